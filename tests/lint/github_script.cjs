// Runs an actions/github-script `script:` against an in-memory stand-in for the GitHub
// REST API (issue comments), so the workflow's comment logic can be tested. Usage:
//   node github_script.cjs SCRIPT_FILE STATE_FILE
// STATE_FILE holds {"comments": [{id, body, user: {type}}], "next_id": N, "calls": []};
// the script runs in the current directory, and the state is written back.
const fs = require('fs');
const [scriptFile, stateFile] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const call = (name, params) => state.calls.push({ name, id: params.comment_id || null });
const github = {
  paginate: async (method, params) => method(params),
  rest: {
    issues: {
      listComments: async (params) => { call('list', params); return state.comments.map((c) => ({ ...c })); },
      createComment: async (params) => {
        call('create', params);
        state.comments.push({ id: state.next_id++, body: params.body, user: { type: 'Bot' } });
      },
      updateComment: async (params) => {
        call('update', params);
        state.comments.find((c) => c.id === params.comment_id).body = params.body;
      },
      deleteComment: async (params) => {
        call('delete', params);
        state.comments = state.comments.filter((c) => c.id !== params.comment_id);
      },
    },
  },
};
const context = { repo: { owner: 'acme', repo: 'slack-config' }, payload: { pull_request: { number: 7 } } };
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
const script = fs.readFileSync(scriptFile, 'utf8');
new AsyncFunction('require', 'github', 'context', 'process', script)(require, github, context, process)
  .then(() => fs.writeFileSync(stateFile, JSON.stringify(state, null, 1)))
  .catch((error) => { console.error(error); process.exit(1); });
