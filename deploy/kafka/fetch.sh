#!/usr/bin/env bash
# Download the Kafka broker jars (and compile the readiness probe) for the
# local livewatch broker. Idempotent: does nothing when the cache already
# matches pom.xml / ReadyCheck.java / KAFKA_VERSION.
#
# Env:
#   LIVEWATCH_KAFKA_HOME  cache dir (default: deploy/kafka/.cache); jars go to
#                         $LIVEWATCH_KAFKA_HOME/libs, probe to .../classes
#   KAFKA_VERSION         override the kafka.version pinned in pom.xml
#                         (experiments only; use a separate LIVEWATCH_KAFKA_HOME)
#   MVN                   maven command (default: mvn)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME="${LIVEWATCH_KAFKA_HOME:-$HERE/.cache}"
MVN="${MVN:-mvn}"

log() { echo "fetch.sh: $*"; }
die() { echo "fetch.sh: ERROR: $*" >&2; exit 1; }

for tool in java javac "$MVN"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH (need JDK 17+ and Maven)"
done

mkdir -p "$KAFKA_HOME"
KAFKA_HOME="$(cd "$KAFKA_HOME" && pwd)"
LIBS="$KAFKA_HOME/libs"
CLASSES="$KAFKA_HOME/classes"
STAMP="$KAFKA_HOME/fetch.stamp"

# Serialise concurrent fetches (e.g. two test sessions starting at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$KAFKA_HOME/.fetch.lock"
  flock 9
fi

# What the cache must correspond to.
want="$( { cat "$HERE/pom.xml" "$HERE/ReadyCheck.java"; echo "KAFKA_VERSION=${KAFKA_VERSION:-}"; } | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -d "$LIBS" && -f "$CLASSES/ReadyCheck.class" ]]; then
  log "jars already present in $LIBS ($(ls "$LIBS" | wc -l) jars) - nothing to do"
  exit 0
fi

mvn_args=(-q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies -DincludeScope=runtime)
if [[ -n "${KAFKA_VERSION:-}" ]]; then
  mvn_args+=("-Dkafka.version=$KAFKA_VERSION")
fi

# Download into a scratch dir and swap it in, so an interrupted fetch never
# leaves a half-populated (or mixed-version) classpath behind.
tmp="$(mktemp -d "$KAFKA_HOME/libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp" "$tmp.classes"' EXIT
log "downloading broker jars with maven (${KAFKA_VERSION:+kafka $KAFKA_VERSION, }this can take a minute the first time)..."
start=$SECONDS
# Maven output goes to a log file (maven 3.8 prints stray colour codes even
# with -q); it is shown only when the download fails.
mvn_log="$KAFKA_HOME/fetch-maven.log"
if ! "$MVN" "${mvn_args[@]}" -DoutputDirectory="$tmp" >"$mvn_log" 2>&1; then
  sed 's/\x1b\[[0-9;]*m//g' "$mvn_log" | tail -n 40 >&2
  die "maven dependency:copy-dependencies failed (full log: $mvn_log)"
fi

kafka_jar="$(ls "$tmp"/kafka_2.13-*.jar 2>/dev/null | head -n1 || true)"
[[ -n "$kafka_jar" ]] || die "kafka_2.13 jar missing from the download"
for cls in kafka/Kafka.class kafka/tools/StorageTool.class; do
  if ! unzip -l "$kafka_jar" 2>/dev/null | grep -q " $cls\$" \
     && ! (cd "$tmp" && jar tf "$kafka_jar" 2>/dev/null | grep -qx "$cls"); then
    die "$cls not found in $(basename "$kafka_jar")"
  fi
done

mkdir -p "$tmp.classes"
javac -nowarn -d "$tmp.classes" -cp "$tmp/*" "$HERE/ReadyCheck.java" || die "compiling ReadyCheck.java failed"

rm -rf "$LIBS" "$CLASSES"
mv "$tmp" "$LIBS"
mv "$tmp.classes" "$CLASSES"
echo "$want" > "$STAMP"
log "fetched $(basename "$kafka_jar" .jar) + $(( $(ls "$LIBS" | wc -l) - 1 )) other jars into $LIBS ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - start))s"
