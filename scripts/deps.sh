#!/usr/bin/env bash
# Installs the Debian packages rodimus needs and builds the OpenMP Kokkos into the cache.
#
# Usage: scripts/deps.sh            (prints the OpenMP Kokkos prefix on stdout, all else on stderr)
# Environment:
#   RODIMUS_CACHE   cache folder (default: $HOME/.cache/rodimus); Kokkos lands in $RODIMUS_CACHE/kokkos-openmp
#   RODIMUS_JOBS    parallel build jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
exec </dev/null

log() { echo "deps.sh: $*" >&2; }

# --- 1. Debian packages ------------------------------------------------------------------------
packages=(
  cmake make g++ dpkg-dev
  libtrilinos-kokkos-dev libeigen3-dev libfmt-dev nlohmann-json3-dev
  catch2 libbenchmark-dev libopenblas-dev
  clang clang-tidy clang-format libclang-rt-14-dev
  pkg-config libpcre2-dev libutf8proc-dev
)
cache=${RODIMUS_CACHE:-$HOME/.cache/rodimus}
mkdir -p "$cache"

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo -n env DEBIAN_FRONTEND=noninteractive)
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$cache/apt-install.log
  { "${sudo[@]}" apt-get update -q && \
    "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1 ||
    { tail -n 40 "$apt_log" >&2; log "apt-get failed (log: $apt_log)"; exit 1; }
  log "installed ${#missing[@]} packages (log: $apt_log)"
fi

# --- 2. OpenMP Kokkos from Debian's trilinos source package --------------------------------------
prefix=$cache/kokkos-openmp
jobs=${RODIMUS_JOBS:-$(nproc)}
# The stamp records how the install was made; a different recipe triggers a rebuild.
recipe="trilinos-13.2.0 packages/kokkos OPENMP+SERIAL cxx20 Release shared g++"

exec 9>"$cache/.kokkos-openmp.lock"
flock 9  # one build at a time when demo.sh and test.sh start together

if [[ -f $prefix/.rodimus-stamp && $(cat "$prefix/.rodimus-stamp") == "$recipe" &&
      -f $prefix/lib/cmake/Kokkos/KokkosConfig.cmake ]]; then
  echo "$prefix"
  exit 0
fi

log "building the OpenMP Kokkos into $prefix (about a minute)"
start=$SECONDS
work=$(mktemp -d "$cache/kokkos-work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# apt-get source needs deb-src entries: derive them from the system's deb entries in a private
# folder, with private package lists, so the system's apt state stays untouched.
mkdir -p "$work/sources" "$work/lists/partial"
for f in /etc/apt/sources.list.d/*.sources; do
  if [[ -f $f ]]; then sed 's/^Types:.*/Types: deb-src/' "$f" >"$work/sources/$(basename "$f")"; fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  if [[ -f $f ]]; then sed -n 's/^deb \(.*\)$/deb-src \1/p' "$f" >"$work/sources/src-$(basename "$f")"; fi
done
apt_opts=(-q -o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources"
          -o "Dir::State::Lists=$work/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
if [[ $(id -u) == 0 ]]; then apt_opts+=(-o APT::Sandbox::User=root); fi
apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
(cd "$work" && apt-get "${apt_opts[@]}" source --download-only trilinos >>"$work/apt.log" 2>&1) ||
  { cat "$work/apt.log" >&2; exit 1; }

# Only packages/kokkos is needed; Debian's patches touch Kokkos' tests alone, which we skip.
origs=("$work"/trilinos_*.orig.tar.*)
orig=${origs[0]}
tar -xf "$orig" -C "$work" --wildcards '*/packages/kokkos/*'
src=$(ls -d "$work"/*/packages/kokkos)

cmake -S "$src" -B "$work/build" \
  -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DBUILD_SHARED_LIBS=ON \
  -DKokkos_CXX_STANDARD=20 \
  -DKokkos_ENABLE_OPENMP=ON \
  -DKokkos_ENABLE_SERIAL=ON \
  -DKokkos_ENABLE_TESTS=OFF \
  -DKokkos_ENABLE_EXAMPLES=OFF >"$work/configure.log" 2>&1 ||
  { tail -n 40 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" -j"$jobs" >"$work/build.log" 2>&1 ||
  { grep -m 20 -B2 -A8 'error' "$work/build.log" >&2 || tail -n 40 "$work/build.log" >&2; exit 1; }
rm -rf "$prefix"
cmake --install "$work/build" >"$work/install.log" 2>&1 || { tail -n 20 "$work/install.log" >&2; exit 1; }
echo "$recipe" >"$prefix/.rodimus-stamp"
log "OpenMP Kokkos ready in $((SECONDS - start)) s"
echo "$prefix"
