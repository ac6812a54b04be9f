# deploy/deps.sh: sourced by deploy/demo.sh and tests/run.sh. Installs, with apt-get, the
# Debian 12 packages waferwatch needs to build, test and run its demo, when missing.
WW_DEB_PACKAGES=(
  build-essential cmake pkg-config
  protobuf-c-compiler libprotobuf-c-dev
  libzmq3-dev libpq-dev libyaml-dev libcmocka-dev
  postgresql postgresql-client
  libcurl4-openssl-dev prometheus-alertmanager
  libmicrohttpd-dev prometheus
  zlib1g-dev
  # The PostgreSQL extension (pgext/: the ww_hist type the schema needs) is built against
  # the server it loads into: pg_config and the server headers (postgres.h, fmgr.h) of
  # PostgreSQL 15, Debian 12's, which the demo and the tests run.
  postgresql-server-dev-15
)

ww_install_deps() {
  local missing=()
  local p
  for p in "${WW_DEB_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "waferwatch: missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "waferwatch: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures and builds into $1 with the cmake options that follow; the compiler's output
# goes to $1/build.log and is shown only when the build fails.
ww_build() {
  local dir=$1; shift
  mkdir -p "$dir"
  if ! { cmake -S "$WW_ROOT" -B "$dir" "$@" && cmake --build "$dir" -j"$(nproc)"; } >"$dir/build.log" 2>&1; then
    cat "$dir/build.log" >&2
    echo "waferwatch: build in $dir failed (log: $dir/build.log)" >&2
    return 1
  fi
}
# The packaging test (tests/packaging/): dpkg-shlibdeps for Depends, systemd-analyze for the units.
WW_DEB_PACKAGES+=(dpkg-dev systemd)
