# tripwire: `make help` lists the targets. Nothing here needs an AWS account.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
VENV ?= .venv
SAM_VENV ?= .venv-sam
WORK ?= .work
POLICY ?= config/policy.toml
export SAM_CLI_TELEMETRY = 0

.PHONY: help setup chromium build check fmt test fuzz fuzz-smoke lint demo demo-backtest demo-tune package validate-infra deploy deploy-members bench bench-decision bench-backtest bench-report report-demo bench-s3 bench-local bench-wave bench-scale bench-profiles check-policy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-16s %s\n", $$1, $$2 }'

setup: $(VENV)/.installed chromium ## Install the local tools (Python virtualenv: moto, cargo-lambda, cfn-lint, checkov; Debian's chromium for the report's browser test)

# The report is tested in a real browser: Debian's chromium package, headless.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (Debian package) for the report's browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

build: ## Build everything (debug)
	$(CARGO) build --workspace --all-targets

check: lint ## The quick loop: fmt --check, clippy, the engine and pipeline tests (under 3 minutes warm)
	$(CARGO) test -q -p tripwire-engine -p tripwire-pipeline

fmt: ## cargo fmt, in place
	$(CARGO) fmt --all

test: setup lint ## Every test: lint, unit, property, corpus, scenarios, pipelines in-process, CLI, end to end on the local stack, infra
	# The end-to-end tests run these binaries under the runtime emulator.
	$(CARGO) build -p detector -p responder -p watchdog -p findings -p tripwire-cli
	$(CARGO) test --workspace
	$(MAKE) validate-infra
	$(MAKE) fuzz-smoke

fuzz: ## cargo fuzz: every target for 10 minutes, seeded with the fixtures (nightly)
	scripts/fuzz.sh 600

fuzz-smoke: ## cargo fuzz: every target for 60 s (skipped, with a notice, without nightly)
	scripts/fuzz.sh 60

lint: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

demo: setup ## The seed incident through the real functions on a local AWS stack, with measured latencies
	$(CARGO) build -q -p detector -p responder -p tripwire-cli
	$(CARGO) run -q -p tripwire-localstack --bin local-demo

demo-backtest: ## Backtest a generated archive holding the seed incident and show what fires
	$(CARGO) build -q --release -p tripwire-cli
	@rm -rf $(WORK)/demo-archive
	./target/release/tripwire generate --out $(WORK)/demo-archive --size-mb 20
	./target/release/tripwire backtest --policy config/policy.toml $(WORK)/demo-archive

demo-tune: ## Suggest thresholds from a generated 30-day history (nightly autoscaler scale-ins and the seed wipe)
	$(CARGO) build -q --release -p tripwire-cli
	@rm -rf $(WORK)/tune-archive
	./target/release/tripwire generate --out $(WORK)/tune-archive --size-mb 1 --days 30
	./target/release/tripwire tune --policy $(POLICY) $(WORK)/tune-archive
	./target/release/tripwire tune --policy $(POLICY) --toml $(WORK)/tune-archive

report-demo: ## The seed incident's report: a generated 30-day history to target/report.html (open it from disk)
	$(CARGO) build -q --release -p tripwire-cli
	@rm -rf $(WORK)/report-archive
	./target/release/tripwire generate --out $(WORK)/report-archive --size-mb 1 --days 30
	./target/release/tripwire report --policy $(POLICY) --out target/report.html $(WORK)/report-archive

package: setup ## cargo lambda build --release: target/lambda/{detector,responder,watchdog,findings}/bootstrap
	PATH="$(abspath $(VENV))/bin:$$PATH" $(CARGO) lambda build --release -p detector -p responder -p watchdog -p findings

$(SAM_VENV)/.installed:
	# Its own virtualenv: the SAM CLI pins boto versions that moto and checkov dislike.
	python3 -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --disable-pip-version-check aws-sam-cli==1.170.0
	touch $@

validate-infra: setup $(SAM_VENV)/.installed ## cfn-lint, checkov, event pattern, IAM, parliament, sam validate and sam build
	$(VENV)/bin/cfn-lint infra/template.yaml infra/member.yaml infra/delegation.yaml
	$(VENV)/bin/checkov -f infra/template.yaml -f infra/member.yaml --framework cloudformation --compact --quiet --skip-download
	$(VENV)/bin/python -m pytest -q tests/infra
	$(SAM_VENV)/bin/sam validate --lint --template infra/template.yaml
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAM_VENV)/bin/sam build --template infra/template.yaml --build-dir $(WORK)/sam-build

deploy: setup $(SAM_VENV)/.installed ## sam build + sam deploy --guided: the central stack (needs AWS credentials)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(SAM_VENV)/bin/sam build --template infra/template.yaml --build-dir $(WORK)/sam-build
	# The whole policy file, published as the next version of /tripwire/policy and pinned
	# by the stack (the functions read that version); and one list of protected
	# principals and denied actions from it, for this stack and (scripts/deploy-members.sh)
	# the member stacks.
	$(CARGO) build -q --release -p tripwire-cli
	$(SAM_VENV)/bin/sam deploy --guided --template-file $(WORK)/sam-build/template.yaml --stack-name tripwire --capabilities CAPABILITY_NAMED_IAM \
	  --parameter-overrides "PolicyParameter=$$(./target/release/tripwire publish-policy $(POLICY))" "ExpectedRegions=$$(PRINT_REGIONS=1 scripts/deploy-members.sh)" "ProtectedPrincipals=$$(./target/release/tripwire check-policy $(POLICY) --get protected_principals)" "DenyActions=$$(./target/release/tripwire check-policy $(POLICY) --get deny_actions)" "DeactivateKeys=$$(./target/release/tripwire check-policy $(POLICY) --get deactivate_keys)" "AllowedAccounts=$$(./target/release/tripwire check-policy $(POLICY) --get allowed_accounts)" "ServiceThreshold=$$(./target/release/tripwire check-policy $(POLICY) --get service_threshold)" "AccountThreshold=$$(./target/release/tripwire check-policy $(POLICY) --get account_threshold)"

deploy-members: ## Print the StackSet commands for every account and enabled region, and the management account's (RUN=1 runs them; MANAGEMENT_PROFILE)
	$(CARGO) build -q --release -p tripwire-cli
	POLICY=$(POLICY) scripts/deploy-members.sh

bench: bench-decision bench-backtest bench-local ## All benchmarks (figures in docs/testing.md, Performance)

bench-decision: ## One event through parse + engine beside a serde_json::Value parse: criterion time, then callgrind instructions
	$(CARGO) bench -p tripwire-engine --bench decision
	scripts/bench-decision-instructions.sh

bench-backtest: ## Backtest MB/s and records/s on a 1 GB archive beside zcat, zcat|jq and Python
	scripts/bench-backtest.sh

bench-report: ## tripwire report beside tripwire backtest --json on the 1 GB bench archive (83 MB gzipped): the page's cost as a ratio
	scripts/bench-report.sh

bench-s3: setup ## Backtest from S3 (moto on loopback) beside the same archive on disk
	scripts/bench-s3.sh

bench-local: setup ## Cold start vs hello-world, time to containment vs raw AWS calls, runaway script (release builds)
	$(CARGO) build --release -p detector -p responder -p tripwire-cli
	$(CARGO) build --release -p tripwire-localstack --bin hello-lambda --bin local-bench
	TRIPWIRE_PROFILE=release ./target/release/local-bench

bench-wave: setup ## A shutdown wave's first page beside a CloudTrail burst's: the detector's own time on the crossing event (release builds)
	$(CARGO) build --release -p detector -p responder -p tripwire-cli
	$(CARGO) build --release -p tripwire-localstack --bin hello-lambda --bin local-bench
	ONLY=wave TRIPWIRE_PROFILE=release ./target/release/local-bench

bench-scale: setup ## The worst day: 100, 10,000 and 100,000 instances through the release detector, and a storm of 1,000 principals (~30 min; target/bench-scale.json)
	$(CARGO) build --release -p detector -p responder -p tripwire-cli
	$(CARGO) build --release -p tripwire-localstack --bin bench-scale
	TRIPWIRE_PROFILE=release ./target/release/bench-scale

bench-profiles: setup ## Candidate release profiles side by side: cold start, RSS, zip, decision cost (~40 min)
	scripts/bench-profiles.sh

check-policy: ## Validate config/policy.toml
	$(CARGO) run -q -p tripwire-cli -- check-policy config/policy.toml

clean: ## Remove build output and generated archives
	$(CARGO) clean
	rm -rf $(WORK)
