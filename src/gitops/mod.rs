//! Reading the config repository from where it lives: a working directory today (for
//! `validate` and `plan` on a pull request's checkout), a merged git commit for `apply`.
//! Both hand the pure `config` core the same `(path, bytes)` pairs.

pub mod commit;
pub mod worktree;
