'use strict';

const { createApp } = require('./app');

const port = Number(process.env.APP_PORT || 8080);

createApp().listen(port, () => {
	console.log(`node-service listening on port ${port}`);
});
