.DEFAULT_GOAL := help
GO ?= go

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

generate: ## Generate templ components
	$(GO) tool templ generate

build: ## Build ./fanout
	$(GO) build -o fanout ./cmd/fanout

run: ## Run fanout serve on embedded defaults (SQLite under ./data, in-process Redis)
	$(GO) run ./cmd/fanout serve

migrate: ## Apply database migrations
	$(GO) run ./cmd/fanout migrate

test: ## Run the whole test suite (set FANOUT_TEST_DATABASE_URL / FANOUT_TEST_REDIS_URL for Postgres / redis-server)
	$(GO) test -race -count=1 -timeout 20m ./...

test-pg: ## The suite on PostgreSQL and redis-server (both must be running)
	FANOUT_TEST_DATABASE_URL=$${FANOUT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:55432/fanout_test?sslmode=disable} \
	FANOUT_TEST_REDIS_URL=$${FANOUT_TEST_REDIS_URL:-redis://127.0.0.1:56379/0} \
	$(GO) test -race -count=1 -timeout 20m ./...

bench: ## Measure throughput and latency (fanout bench)
	$(GO) run ./cmd/fanout bench

lint: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v _templ.go))" || (gofmt -l $$(git ls-files '*.go' | grep -v _templ.go); exit 1)

check-generated: generate ## Fail when generated templ code is stale
	git diff --exit-code -- '*_templ.go'

tidy: ## go mod tidy
	$(GO) mod tidy

clean: ## Remove build outputs
	rm -f fanout

.PHONY: help generate build run migrate test test-pg bench lint check-generated tidy clean
