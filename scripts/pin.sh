# Sourced by the bench scripts. PIN=1 puts the servers under test on CPU 0 and the load
# generator on CPU 1, so a figure is a server's own cost per request rather than how it
# shares the cores; `server` and `load` are the command prefixes (empty without PIN).
server=() load=()
if [ -n "${PIN:-}" ]; then
  command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
  server=(taskset -c 0) load=(taskset -c 1)
fi
