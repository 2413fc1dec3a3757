'use strict';

const express = require('express');

/**
 * Builds the service: a health check and a greeting that echoes a name.
 *
 * @return {express.Application}
 */
function createApp() {
	const app = express();

	app.get('/healthz', (req, res) => {
		res.json({ status: 'ok' });
	});

	app.get('/hello/:name', (req, res) => {
		const name = req.params.name.slice(0, 64);
		res.json({ greeting: `Hello, ${name}!` });
	});

	return app;
}

module.exports = { createApp };
