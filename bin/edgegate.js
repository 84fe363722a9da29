#!/usr/bin/env node
// Thin launcher so `npx edgegate` works straight after `npm ci`: the CLI is TypeScript run by Node 24's type stripping.
import '../cmd/edgegate.ts';
