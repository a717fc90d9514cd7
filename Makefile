# mediajobs: `make start` serves the API on the embedded defaults; `make test` runs the suite.
SHELL := /bin/bash
NPM_FLAGS := --no-audit --no-fund --loglevel=error

.PHONY: install build start worker test typecheck bench clean

node_modules/.installed: package.json package-lock.json
	npm ci $(NPM_FLAGS)
	@touch $@

# The two small Node-API addons, each one C file compiled with the machine's cc and
# Node's headers into build/<name>.node. Without a C compiler the service still works:
# src/media/vfork-spawn.c spawns the workers' tools by vfork + exec (native-spawner.ts);
# src/images/malloc-tune.c fixes glibc's mmap threshold, so that freed pixel memory goes
# back to the system (malloc-tune.ts).
NODE_INCLUDE := $(shell node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
ADDONS := build/vfork-spawn.node build/malloc-tune.node
build/vfork-spawn.node: WITHOUT := tools will be spawned with Node's child_process
build/malloc-tune.node: WITHOUT := freed image memory will stay with the process
vpath %.c src/media src/images
build/%.node: %.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -shared -fPIC -I$(NODE_INCLUDE) -o $@ $< \
	  || echo "warning: could not build $@; $(WITHOUT)"

install: node_modules/.installed $(ADDONS)

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
	node dist/bench/ffmpeg-concurrency.bench.js
	node dist/bench/objects.bench.js
	node dist/bench/image-on-get.bench.js

clean:
	rm -rf dist build node_modules/.installed
