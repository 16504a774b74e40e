#!/bin/bash
# usage: run.sh BIN name val limit testlimit [extra design args...]
B=$1; shift
S=/work/shared
R=/work/runs/search
name=$1; val=$2; lim=$3; tlim=$4; shift 4
LIM=""; [ -n "$lim" ] && LIM="--limit $lim"
TL=""; [ -n "$tlim" ] && TL="--limit $tlim"
uptime > $R/$name.uptime
/usr/bin/time -f "%e s real %U s user %M KB maxrss" $B design --model $S/models/$name/model.onnx --val $val $LIM --out $R/$name.sieve --report $R/${name}_report --json "$@" > $R/$name.json 2> $R/$name.err || exit 1
uptime >> $R/$name.uptime
cp $R/$name.sieve /work/runs/packages/.$name.sieve.tmp && mv /work/runs/packages/.$name.sieve.tmp /work/runs/packages/$name.sieve
$B eval --package $R/$name.sieve --model $S/models/$name/model.onnx --dataset $val --split test $TL --json > $R/$name.test.json 2>> $R/$name.err
uptime >> $R/$name.uptime
