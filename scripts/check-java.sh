#!/usr/bin/env bash
# Fail with one clear line when Java 17+ (needed by local Spark) is missing.
set -u
java_bin="java"
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then java_bin="$JAVA_HOME/bin/java"; fi
if ! command -v "$java_bin" >/dev/null 2>&1; then
  echo "error: Java 17+ is required by Spark but was not found. Install a JDK (e.g. 'apt-get install openjdk-17-jre-headless') or set JAVA_HOME." >&2
  exit 1
fi
version=$("$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\)\(\.[0-9]*\)\{0,1\}.*/\1\2/p' | head -n1)
major=${version%%.*}
if [ "$major" = "1" ]; then major=${version#1.}; fi
if [ -z "$major" ] || [ "$major" -lt 17 ] 2>/dev/null; then
  echo "error: Java 17+ is required by Spark, found '${version:-unknown}' at $(command -v "$java_bin"). Install a newer JDK or point JAVA_HOME at one." >&2
  exit 1
fi
