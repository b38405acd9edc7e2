# The two commands of the quick start:
#   make demo   installs what is missing, builds, extracts the default model, runs a prompt
#   make test   builds and runs every test (what CI runs)
BUILD ?= build
JOBS ?= $(shell nproc)
PROMPT ?= What is the capital of France? Answer in one sentence.

.PHONY: all build deps model demo test test-cpp test-py test-asan bench clean

all: build

deps:
	bash scripts/setup.sh deps

model:
	bash scripts/setup.sh model

build:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

demo: deps build model
	./$(BUILD)/bin/spool run models/SmolLM2-135M-Instruct.Q4_1.gguf --chat "$(PROMPT)" -n 64 --stats

test: deps build model
	bash scripts/test.sh

test-asan:
	bash scripts/test.sh asan

bench: deps build model
	bash bench/run.sh

clean:
	rm -rf $(BUILD) build-asan
