#!/usr/bin/env bash
# models.json: alias -> model id, with a default alias. RALPH_MODELS_FILE
# points at another registry of the same shape.
# Needs lib/common.sh.

models_file() { printf '%s\n' "${RALPH_MODELS_FILE:-$RALPH_HOME/models.json}"; }

# models_check FILE: the registry is readable and well formed, or exit 1.
models_check() {
  jq -e '(.models | type == "object") and (.models | length > 0) and (.default | type == "string")' "$1" >/dev/null 2>&1 \
    || die "$EXIT_ERROR" "$1 is not a models registry: it needs {\"default\": ALIAS, \"models\": {ALIAS: MODEL_ID, …}}"
}

models_aliases() { jq -r '.models | keys | join(", ")' "$(models_file)"; }

# model_id ALIAS: the model id, or exit 2 listing the valid aliases. An empty
# ALIAS means the registry's default.
model_id() {
  local alias=$1 file id
  file=$(models_file)
  models_check "$file"
  [[ -n $alias ]] || alias=$(jq -r '.default' "$file")
  id=$(jq -r --arg a "$alias" '.models[$a] // empty | strings' "$file")
  [[ -n $id ]] || usage_error "unknown model alias '$alias': use one of $(models_aliases) (from $file)"
  printf '%s\n' "$id"
}

# models_list: ALIAS MODEL_ID lines, the default marked.
models_list() {
  local file
  file=$(models_file)
  models_check "$file"
  jq -r '.default as $d | .models | to_entries[] | "\(.key)\t\(.value)\(if .key == $d then "\t(default)" else "" end)"' "$file"
}
