#!/usr/bin/env node
// Start kinesalite (a Kinesis API server, in memory) on 127.0.0.1: its own command line has
// no host option. Usage: node scripts/servers/kinesalite.js PORT [HOST]
// Looks for the module in $DSF_NODE_MODULES, else in .servers/node/node_modules (where
// scripts/servers/install.sh puts it). Exits on SIGTERM/SIGINT.
'use strict'

const path = require('path')

const port = Number(process.argv[2])
const host = process.argv[3] || '127.0.0.1'
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node kinesalite.js PORT [HOST]')
  process.exit(2)
}
const modules = process.env.DSF_NODE_MODULES ||
  path.resolve(__dirname, '..', '..', '.servers', 'node', 'node_modules')
const kinesalite = require(path.join(modules, 'kinesalite'))

const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 })
server.on('error', (err) => {
  console.error('kinesalite: ' + err.message)
  process.exit(1)
})
server.listen(port, host, () => {
  console.log('kinesalite listening at http://' + host + ':' + port)
})

function shutdown (signal) {
  console.log('kinesalite: ' + signal + ', exiting')
  // Do not wait for keep-alive connections to drain: the store is in memory anyway.
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
