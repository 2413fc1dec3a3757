'use strict';

const assert = require('assert');
const http = require('http');
const { createApp } = require('../src/app');

function get(server, path) {
	const { port } = server.address();
	return new Promise((resolve, reject) => {
		http.get({ host: '127.0.0.1', port, path }, (res) => {
			let body = '';
			res.on('data', (chunk) => {
				body += chunk;
			});
			res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
		}).on('error', reject);
	});
}

describe('node-service', () => {
	let server;

	before((done) => {
		server = createApp().listen(0, '127.0.0.1', done);
	});

	after((done) => {
		server.close(done);
	});

	it('answers the health check', async () => {
		const res = await get(server, '/healthz');
		assert.strictEqual(res.status, 200);
		assert.deepStrictEqual(res.body, { status: 'ok' });
	});

	it('greets by name', async () => {
		const res = await get(server, '/hello/flense');
		assert.strictEqual(res.body.greeting, 'Hello, flense!');
	});
});
