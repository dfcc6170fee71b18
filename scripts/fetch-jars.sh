#!/usr/bin/env bash
# Fetch the JVM artifacts of jvm/pom.xml once into a cache folder (no network on reruns):
#   $KAMLIB_JARS/spark   connectors for spark.driver/executor.extraClassPath (Kafka, Delta, s3a, Avro)
#   $KAMLIB_JARS/broker  the single-node KRaft Kafka broker the tests start
# Jars that pyspark already ships (same artifact, any version) are dropped so nothing is on the
# classpath twice. Prints the cache folder; fails with one line when Maven cannot be reached.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PY:-$root/.venv/bin/python}"
spark_jars="$("$py" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
spark_version="$("$py" -c 'import pyspark; print(pyspark.__version__)')"
pom_spark="$(sed -n 's:.*<spark.version>\(.*\)</spark.version>.*:\1:p' "$root/jvm/pom.xml")"
if [ "$spark_version" != "$pom_spark" ]; then
  echo "error: jvm/pom.xml pins Spark $pom_spark but the venv has pyspark $spark_version; make them equal" >&2
  exit 1
fi
cache="${KAMLIB_JARS:-$HOME/.cache/kamlib/jars-$(cat "$root/jvm/pom.xml" "$root/jvm/broker/pom.xml" | sha256sum | cut -c1-12)}"
if [ -f "$cache/.complete" ]; then echo "$cache"; exit 0; fi
rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
fetch() {  # $1 = pom, $2 = output folder
  if ! mvn -q -B -f "$1" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$2" >"$cache.tmp/mvn.log" 2>&1; then
    echo "error: could not fetch kamlib's JVM test artifacts from Maven Central (is it reachable? see $cache.tmp/mvn.log)" >&2
    exit 1
  fi
}
fetch "$root/jvm/pom.xml" "$cache.tmp/spark"
fetch "$root/jvm/broker/pom.xml" "$cache.tmp/broker"
# Drop what pyspark ships already (artifact name without its version).
for jar in "$cache.tmp/spark"/*.jar; do
  base="$(basename "$jar" | sed -E 's/-[0-9][^-]*(-[A-Za-z0-9.]+)?\.jar$//')"
  if compgen -G "$spark_jars/$base-[0-9]*.jar" >/dev/null; then rm -f "$jar"; fi
done
rm -rf "$cache" && mv "$cache.tmp" "$cache" && touch "$cache/.complete"
echo "$cache"
