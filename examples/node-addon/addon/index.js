// node-gyp puts the compiled addon in build/Release.
module.exports = require("./build/Release/kiln_probe.node");
