#!/usr/bin/env node
// Entry point of the `natlb` command (compiled TypeScript lives in dist/).
"use strict";
require("../dist/src/cli.js").main(process.argv);
