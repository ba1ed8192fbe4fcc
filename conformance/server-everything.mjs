#!/usr/bin/env node
// Runs @modelcontextprotocol/server-everything in its streamable HTTP mode
// (`mcp-server-everything streamableHttp`, endpoint /mcp on $PORT), bound to
// 127.0.0.1 only: the package listens on every interface, so this wrapper
// gives a listen() call without a host the loopback host before loading it.
//
// Settings, from the environment:
//   PORT   the port to listen on (required)

import net from 'node:net';

if (!process.env.PORT) {
    console.error('PORT is required');
    process.exit(2);
}

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
    // listen(port[, backlog][, callback]): add the host after the port.
    if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
        const rest = args.slice(1);
        if (typeof rest[0] !== 'string') return listen.call(this, Number(args[0]), '127.0.0.1', ...rest);
    }
    return listen.apply(this, args);
};

await import('@modelcontextprotocol/server-everything/dist/transports/streamableHttp.js').catch(async (err) => {
    if (err?.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
    // The package exports only its bin: load the file by path.
    const { createRequire } = await import('node:module');
    const { pathToFileURL } = await import('node:url');
    const path = await import('node:path');
    const require = createRequire(import.meta.url);
    const pkg = require.resolve('@modelcontextprotocol/server-everything/package.json');
    await import(pathToFileURL(path.join(path.dirname(pkg), 'dist/transports/streamableHttp.js')).href);
});
