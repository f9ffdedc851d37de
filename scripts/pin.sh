# Sourced by the bench scripts. PIN=1 puts the servers under test on CPU 0 and the load
# generator on CPU 1, so a figure is a server's own cost per request rather than how it
# shares the cores; `server` and `load` are the command prefixes (empty without PIN).
server=() load=()
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
  server=(taskset -c 0) load=(taskset -c 1)
fi

# What both benchmarks need before they start: wrk, and release builds of the origin and
# the lab.
prepare_bench() {
  command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
  cargo build --release -p keyway-origin --bin keyway -p keyway-lab >/dev/null
}
