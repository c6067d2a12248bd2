#!/bin/bash
# How small echo and hub broadcast (through a Redis backplane) scale from 1 to 2
# --workers processes. Run by hand after benchmarks/run.py built the load
# generator; needs redis-server. No pinning: the 2 cores are shared with the
# load generator (about 10-40% of one core).
cd /work/main
redis-server --port 16400 --save "" --daemonize no >/tmp/scale-redis.log 2>&1 &
RPID=$!
sleep 0.5
for W in 1 2; do
  for APP in echo broadcast; do
    if [ $APP = echo ]; then A=examples.echo.Echo; else A=examples.hubchat.HubChat; fi
    [ $APP = echo ] && PORT=$((18100 + W*10)) || PORT=$((18101 + W*10))
    /tmp/venv/bin/twistd -n --pidfile= txratchet --app $A --workers $W --backplane redis://127.0.0.1:16400 --no-compression --port tcp:$PORT:interface=127.0.0.1 > /tmp/scale-$W-$APP.log 2>&1 &
    TP=$!
    sleep 3
    if [ $APP = echo ]; then
      R=$(./benchmarks/build/loadgen --port $PORT --scenario echo --conns 50 --inflight 32 --size 32 --warmup 1 --duration 5 2>&1 | tail -3)
    else
      R=$(./benchmarks/build/loadgen --port $PORT --scenario broadcast --receivers 200 --window 10 --size 64 --warmup 1 --duration 5 2>&1 | tail -3)
    fi
    echo "workers=$W app=$APP :: $R"
    kill -TERM $TP; wait $TP 2>/dev/null
  done
done
kill $RPID
