#!/usr/bin/env bash
# models.json: alias -> model id, with a default alias.

models_file() { printf '%s\n' "${RALPH_MODELS_FILE:-$RALPH_HOME/models.json}"; }

models_aliases() { jq -r '.models | keys | join(", ")' "$(models_file)"; }

# model_id ALIAS: the model id, or exit 2 listing the valid aliases. An empty
# ALIAS means the default.
model_id() {
  local alias=$1 file id
  file=$(models_file)
  jq -e '.models | type == "object"' "$file" >/dev/null 2>&1 \
    || die "$EXIT_ERROR" "$file is not a models registry ({\"default\": ALIAS, \"models\": {ALIAS: ID}})"
  [[ -n $alias ]] || alias=$(jq -r '.default // empty' "$file")
  id=$(jq -r --arg a "$alias" '.models[$a] // empty' "$file")
  [[ -n $id ]] || usage_error "unknown model alias '$alias': use one of $(models_aliases) (models.json)"
  printf '%s\n' "$id"
}
