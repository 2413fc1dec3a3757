'use strict';

module.exports = [
	{
		files: [ '**/*.js' ],
		languageOptions: {
			ecmaVersion: 2022,
			sourceType: 'commonjs',
			globals: {
				require: 'readonly',
				module: 'writable',
				process: 'readonly',
				console: 'readonly',
				describe: 'readonly',
				it: 'readonly',
				before: 'readonly',
				after: 'readonly'
			}
		},
		rules: {
			'no-unused-vars': 'error',
			'no-undef': 'error',
			'prefer-const': 'error',
			eqeqeq: 'error',
			semi: [ 'error', 'always' ],
			indent: [ 'error', 'tab' ]
		}
	}
];
