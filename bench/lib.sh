# Shared by the bench scripts (sourced, not run).

# measure LABEL CMD...: one run's wall seconds and peak RSS (MiB) into secs[LABEL], mem[LABEL].
# A failing command stops the benchmark unless MEASURE_TOLERATE_FAILURE=1 (git commit with
# nothing to commit exits 1, which the snapshot benchmark expects).
declare -A secs mem
measure() {
  local label=$1; shift
  if ! /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err"; then
    [[ ${MEASURE_TOLERATE_FAILURE:-0} == 1 ]] || { cat "$work/err" >&2; exit 1; }
  fi
  read -r s k < <(tail -1 "$work/t")
  secs[$label]=$s; mem[$label]=$((k / 1024))
}

# vault_config FILE STATE VAULT [DRIVE [MIRROR]]: a config with one source `vault` (and a dir
# target `drive` when DRIVE is given, a private mirror when MIRROR is) — the setup most bench
# scripts share.
vault_config() {
  {
    printf 'state_dir = "%s"\n[[source]]\nname = "vault"\npath = "%s"\n' "$2" "$3"
    if [[ -n ${5:-} ]]; then printf 'mirror = "%s"\n' "$5"; fi
    if [[ -n ${4:-} ]]; then printf '[[target]]\nname = "drive"\nkind = "dir"\npath = "%s"\n' "$4"; fi
  } > "$1"
}
