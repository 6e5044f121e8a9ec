#!/bin/sh
# Restores Redraft's Redis data from an RDB backup (one that `redis-cli BGSAVE` wrote), with Redis
# stopped. Run inside the redis image, so that the Redis that loads the backup is the one that serves it:
#   docker compose run --rm --no-deps -v "$PWD/backup:/backup:ro" \
#     -v "$PWD/docker/redis-restore.sh:/restore.sh:ro" redis sh /restore.sh /backup/redraft.rdb
# With AOF on, Redis loads the AOF and ignores dump.rdb (an empty new AOF would win over the backup), so
# the backup is loaded with AOF off, then AOF is switched on, which rewrites it from the loaded data.
set -eu
backup=$1
dir=${2:-/data}
[ -f "$backup" ] || { echo "redis-restore: no backup at $backup" >&2; exit 2; }
sock=$(mktemp -u /tmp/redis-restore.XXXXXX)
rm -rf "$dir/appendonlydir"
cp "$backup" "$dir/dump.rdb"
redis-server --dir "$dir" --dbfilename dump.rdb --appendonly no --save "" --port 0 --unixsocket "$sock" &
pid=$!
until [ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; do  # LOADING until the backup is in
  kill -0 "$pid" 2>/dev/null || { echo "redis-restore: Redis could not load $backup" >&2; exit 1; }
  sleep 0.1
done
redis-cli -s "$sock" config set appendonly yes > /dev/null
until redis-cli -s "$sock" info persistence | grep -q '^aof_rewrite_in_progress:0' \
   && redis-cli -s "$sock" info persistence | grep -q '^aof_rewrite_scheduled:0'; do sleep 0.1; done
redis-cli -s "$sock" info persistence | grep -q '^aof_last_bgrewrite_status:ok' \
  || { echo "redis-restore: writing the AOF failed; see the output above" >&2; exit 1; }
echo "redis-restore: $(redis-cli -s "$sock" dbsize) keys restored into $dir"
redis-cli -s "$sock" shutdown nosave > /dev/null 2>&1 || true  # the AOF is written; no RDB needed
wait "$pid"
