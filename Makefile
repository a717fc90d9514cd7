# mediajobs: `make start` serves the API on the embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
NPM_FLAGS := --no-audit --no-fund --loglevel=error

.PHONY: install build start worker test test-pglite typecheck bench clean

node_modules/.installed: package.json package-lock.json
	npm ci $(NPM_FLAGS)
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

start: build
	node dist/src/cli.js serve

worker: build
	node dist/src/cli.js worker

typecheck: install
	npx tsc -p tsconfig.json --noEmit

# The whole suite, on PostgreSQL when DATABASE_URL is set, on PGlite otherwise.
test: typecheck
	npx mocha 'test/**/*.test.ts'

# The fast API and store tests on embedded PGlite, whatever DATABASE_URL says.
test-pglite: install
	env -u DATABASE_URL npx mocha 'test/http/**/*.test.ts' 'test/xml/**/*.test.ts' 'test/engine/worker.test.ts'

bench: build
	node dist/bench/media-info.bench.js
	node dist/bench/enqueue-latency.bench.js
	node dist/bench/pic-process.bench.js

clean:
	rm -rf dist node_modules/.installed
