#!/bin/sh
# distproc hook recorder: appends one stamped JSON line per Claude Code hook event to the log named by $1.
# The hook's JSON arrives on stdin; hooks carry no time, so the stamp is ours. One printf is one append.
line="{\"t\":$(date +%s.%N),\"hook\":$(tr -d '\n')}"
printf '%s\n' "$line" >> "$1"
