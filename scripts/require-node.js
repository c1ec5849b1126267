// Plain JavaScript on purpose: it must run on any Node (the machine's default
// may be 20) and say in one line what is needed, instead of Node 20's
// ERR_UNKNOWN_FILE_EXTENSION ".ts". `npm install` puts a project-local Node 24
// (the node-<os>-<cpu> package, see README "Two commands") first on npm
// scripts' and npx's PATH, so this only fails where no local one could install.
const REQUIRED = 24;
const major = Number(process.versions.node.split('.')[0]);
if (major < REQUIRED) {
  console.error(
    `identity-service needs Node.js ${REQUIRED} or later (this is ${process.version}): run it through npm (\`npm start\`, \`npx identity\`), which uses the Node ${REQUIRED} that \`npm install\` put in node_modules/.bin, or install Node ${REQUIRED} from https://nodejs.org`,
  );
  process.exit(1);
}
