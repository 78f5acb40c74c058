//! The controller's lease: one row per lease name, with its holder, a generation that
//! grows by one at every change of holder, and an expiry by the database's clock. A
//! replica leads while it holds the lease; it renews on a heartbeat, and another may take
//! the lease only once it has expired. The generation is the fencing token: see
//! [`Store::set_fence`](super::Store::set_fence).

use super::engine::Value;
use super::{Store, StoreError};

/// What a fenced store checks before every write: the lease is still `holder`'s at
/// `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: String,
    pub holder: String,
    pub generation: i64,
}

/// A lease this process holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub generation: i64,
    /// Unix milliseconds, by the database's clock.
    pub expires_at: i64,
}

/// Who holds a lease, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub holder: String,
    /// Where the holder takes webhooks (its `--advertise` URL), if it said.
    pub address: Option<String>,
    pub generation: i64,
    /// Unix milliseconds, by the database's clock.
    pub acquired_at: i64,
    pub expires_at: i64,
    /// Whether it had expired when read.
    pub expired: bool,
}

impl Store {
    /// Takes the lease `name` for `holder` for `ttl_millis` if no one holds it, its holder
    /// let it expire, or `holder` itself held it (a replica restarted under the same
    /// name: the generation fences off whatever its earlier self still had in flight);
    /// the generation grows by one. `None` while another holds it.
    pub fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        address: Option<&str>,
        ttl_millis: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let now = self.engine.now_sql();
        let sql = format!(
            "INSERT INTO leases (name, holder, address, generation, acquired_at, renewed_at, expires_at)
             VALUES (?1, ?2, ?4, 1, {now}, {now}, {now} + ?3)
             ON CONFLICT (name) DO UPDATE SET holder = ?2, address = ?4,
                 generation = leases.generation + 1,
                 acquired_at = {now}, renewed_at = {now}, expires_at = {now} + ?3
             WHERE leases.expires_at < {now} OR leases.holder = ?2
             RETURNING generation, expires_at"
        );
        self.lease_statement(
            sql,
            vec![
                name.into(),
                holder.into(),
                ttl_millis.into(),
                address.into(),
            ],
        )
    }

    /// Extends the lease `holder` holds at `generation` by `ttl_millis` from now; `None`
    /// when it has moved on (another holder, a newer generation). A lease that expired
    /// but was not taken is still this holder's: no one else wrote meanwhile.
    pub fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
        ttl_millis: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let now = self.engine.now_sql();
        let sql = format!(
            "UPDATE leases SET renewed_at = {now}, expires_at = {now} + ?4
             WHERE name = ?1 AND holder = ?2 AND generation = ?3
             RETURNING generation, expires_at"
        );
        self.lease_statement(
            sql,
            vec![
                name.into(),
                holder.into(),
                generation.into(),
                ttl_millis.into(),
            ],
        )
    }

    /// Lets the lease go at once (a clean shutdown), so another replica need not wait
    /// for it to expire. Nothing happens when it has already moved on.
    pub fn release_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
    ) -> Result<(), StoreError> {
        self.unfenced(
            "UPDATE leases SET expires_at = 0 WHERE name = ?1 AND holder = ?2 AND generation = ?3",
            vec![name.into(), holder.into(), generation.into()],
        )
        .map(|_| ())
    }

    /// Who holds the lease `name`, if anyone ever did.
    pub fn lease_holder(&self, name: &str) -> Result<Option<LeaseHolder>, StoreError> {
        let now = self.engine.now_sql();
        let rows = self.unfenced(
            &format!(
                "SELECT holder, generation, acquired_at, expires_at, {now}, address FROM leases WHERE name = ?1"
            ),
            vec![name.into()],
        )?;
        Ok(rows.first().map(|row| LeaseHolder {
            holder: row.text(0),
            generation: row.int(1),
            acquired_at: row.int(2),
            expires_at: row.int(3),
            expired: row.int(3) < row.int(4),
            address: row.opt_text(5),
        }))
    }

    fn lease_statement(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Option<Lease>, StoreError> {
        let rows = self.unfenced(&sql, params)?;
        Ok(rows.first().map(|row| Lease {
            generation: row.int(0),
            expires_at: row.int(1),
        }))
    }
}
