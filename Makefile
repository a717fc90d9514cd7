# mediajobs: `make start` serves the API on the embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
NPM_FLAGS := --no-audit --no-fund --loglevel=error

.PHONY: install build start worker test typecheck bench clean

node_modules/.installed: package.json package-lock.json
	npm ci $(NPM_FLAGS)
	@touch $@

# vfork + exec for the workers' tools (src/media/native-spawner.ts). Without a C
# compiler the service still works: it spawns from a helper process instead.
NODE_INCLUDE := $(shell node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
build/vfork-spawn.node: src/media/vfork-spawn.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -shared -fPIC -I$(NODE_INCLUDE) -o $@ $< \
	  || echo "warning: could not build $@; tools will be spawned from a helper process"

# glibc's mmap threshold fixed, so freed pixel memory goes back to the system
# (src/images/malloc-tune.ts). Without it the service works, and keeps more memory.
build/malloc-tune.node: src/images/malloc-tune.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -shared -fPIC -I$(NODE_INCLUDE) -o $@ $< \
	  || echo "warning: could not build $@; freed image memory will stay with the process"

install: node_modules/.installed build/vfork-spawn.node build/malloc-tune.node

build: install
	npx tsc -p tsconfig.json

start: build
	node dist/src/cli.js serve

worker: build
	node dist/src/cli.js worker

typecheck: install
	npx tsc -p tsconfig.json --noEmit

# The whole suite, on the PostgreSQL server DATABASE_URL names, else on an embedded
# PostgreSQL the test harness starts once per run.
test: typecheck
	npx mocha 'test/**/*.test.ts'

bench: build
	node dist/bench/media-info.bench.js
	node dist/bench/enqueue-latency.bench.js
	node dist/bench/pic-process.bench.js
	node dist/bench/memory.bench.js
	node dist/bench/queue-core.bench.js
	node dist/bench/scale.js
	node dist/bench/task-api.bench.js
	node dist/bench/transcode.bench.js
	node dist/bench/snapshot.bench.js

clean:
	rm -rf dist build node_modules/.installed
