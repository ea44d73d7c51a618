#!/usr/bin/env bash
# ralph's version: one place.
readonly RALPH_VERSION=0.1.0
export RALPH_VERSION
