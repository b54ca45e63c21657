# The host-side stats poller: prints a snapshot of the process table and
# the load, CPU and memory at each poll, framed by
#   @@zapstats:NONCE:begin SEQ PID   ...   @@zapstats:NONCE:end SEQ
# (the format is read by src/stats/parse.rs). POSIX awk, run with LC_ALL=C.
# It stays alive between polls, remembering what it read last time, and
# starts one process per poll (an sh), never one per pid. Measured by
# bench/stats-cost.
#
# It parses nothing: it hands on the lines of /proc as they are, tagged,
# and zap reads them (src/stats/procstat.rs). A process whose stat line is
# as at the last poll is named by its pid alone ("= PID"): zap still has it.
#
# Variables (-v): nonce, fed (1: poll once per line read from stdin, which
# zap writes every interval, and end at EOF; 0: poll every `every` seconds),
# every, polls (0 = forever), mode (proc | ps), tck and page (getconf
# CLK_TCK / PAGESIZE), pid (its own, to be stopped by), refresh (each
# process is read afresh at least every `refresh` polls), root (the proc
# folder; tests point it at fixtures).
# This text holds no single quote: zap passes it to sh inside single quotes.

BEGIN {
    if (root == "") root = "/proc"
    if (refresh < 1) refresh = 5
    # Each poll starts one sh, which lists the processes (or runs ps). Fed,
    # the sh first waits for its line with the read builtin (which takes
    # one byte at a time, so no line of a later poll is lost), and says
    # nothing at EOF. Otherwise it lists, then becomes the sleep of the
    # interval with its output closed: awk reads the list at once, and
    # close() waits out the rest of the interval. (mawk would not hand over
    # a line from a pipe that stays open, so a long-lived lister cannot feed
    # it, nor can awk read the lines zap writes.)
    # A fed line may name processes zap no longer needs (see told()): the
    # sh hands it on, behind an x, before the listing.
    if (fed) { lead = "read -r line || exit; echo \"x$line\"; "; wait = "" }
    else { lead = ""; wait = "; exec sleep " every " >&-" }
    for (seq = 1; polls == 0 || seq <= polls; seq++) {
        if (mode == "ps") cmd = ps_table()
        else cmd = proc_table()
        # Fed and stdin ended: zap is done with this poller.
        if (cmd == "") exit
        print "@@zapstats:" nonce ":end " seq
        fflush()
        close(cmd)
    }
}

# Opens a snapshot. Called once the command of the poll has answered, so that a
# fed poller told to end prints no half snapshot.
function begin_snapshot() {
    print "@@zapstats:" nonce ":begin " seq " " pid
}

# In fed mode, the line zap wrote for this poll, first out of `cmd`: "x"
# alone, "xr", or "xs PID..." naming processes to skip from now on: they have
# settled outside every job (zap knows the shells of the jobs, the host side does
# not). A skipped pid is read again once it has left /proc, so a pid taken
# by a new process is read; one freed and taken again within a single
# interval is not (pids wrap slowly). 0 when the poller is to end.
function told(cmd,   line, n, f, i) {
    if (!fed) return 1
    if ((cmd | getline line) <= 0) return 0
    if (mode == "proc" && line ~ /^xs /) {
        n = split(line, f, " ")
        for (i = 2; i <= n; i++) skip[f[i]] = seq
    }
    # "xr": forget every skip (what zap remembers of them would only grow).
    else if (line == "xr") split("", skip)
    return 1
}

# One line of `file`, or "" when it cannot be read (the process is gone).
function first_line(file,   line) {
    line = ""
    if ((getline line < file) <= 0) line = ""
    close(file)
    return line
}

function host_figures(   file, line, cpus) {
    print "u", first_line(root "/uptime")
    print "l", first_line(root "/loadavg")
    # The cpu lines come first; the rest of /proc/stat (intr) is long.
    file = root "/stat"
    cpus = 0
    while ((getline line < file) > 0) {
        if (line ~ /^cpu /) print "c", line
        else if (line ~ /^cpu[0-9]/) cpus++
        else break
    }
    close(file)
    print "n", cpus
    # MemTotal, MemFree, MemAvailable (since Linux 3.14), Buffers, Cached
    # come first, in that order; zap needs no more.
    file = root "/meminfo"
    while ((getline line < file) > 0) {
        print "m", line
        if (line ~ /^Cached:/) break
    }
    close(file)
}

# /proc/PID/stat for every process, and /proc/PID/statm for the precise
# resident size (the rss field of stat is an approximate counter on recent
# kernels, off by up to hundreds of KB), as "P STATM|STAT".
#
# Most processes sleep: their stat line is the same as at the last poll
# (they have not run, so their CPU time, faults and memory have not moved,
# and they were not reparented): "= PID" says so, without reading statm.
# Every `refresh` polls (staggered by pid) each one is read afresh, to catch
# pages reclaimed from a sleeping process. Kernel threads are told apart by
# zap, which asks for them to be skipped like any process outside the jobs.
#
# Processes new since the last poll are read by one grep, not by getline:
# a process may end between the opening of its file and the reading,
# which grep reports and goes past, where mawk stops with "read error".
# New processes are the ones that end that fast (a loop forking short
# commands); a grep per poll for all would double the cost.
function proc_table(   cmd, list, n, dirs, i, dir, file, s, line, p, fresh, fresh_files, c, statm, text, news, fresh_pids, own) {
    # The sh says its own pid first: it belongs to this poll, a new process each
    # time, and never part of a job; leaving it out spares a grep per poll.
    cmd = lead "echo $$ " root "/[0-9]*" wait
    list = ""
    if (!told(cmd) || (cmd | getline list) <= 0) { close(cmd); return "" }
    begin_snapshot()
    print "h proc", tck, page
    host_figures()
    n = split(list, dirs, " ")
    own = root "/" dirs[1]
    fresh_files = ""
    news = 0
    for (i = 1; i <= n; i++) {
        dir = dirs[i]
        if (i == 1 || dir == own) continue
        p = substr(dir, length(root) + 2)
        if (p in skip) { skip[p] = seq; continue }
        if (!(p in seen)) {
            fresh_files = fresh_files " " dir "/stat " dir "/statm"
            fresh_pids[++news] = p
            continue
        }
        file = dir "/stat"
        s = ""
        getline s < file
        # A comm holding a newline cuts the line short (a whole one has 52
        # fields, over 100 characters): join the rest.
        if (length(s) < 100) while ((getline line < file) > 0) s = s " " line
        close(file)
        if (s == "") continue
        fresh = (seq + p) % refresh == 0
        if ((p in last_stat) && last_stat[p] == s && !fresh) {
            print "=", p
            seen[p] = seq
            continue
        }
        take(p, s, first_line(dir "/statm"))
    }
    if (fresh_files != "") {
        split("", stat)
        split("", statm)
        file = "grep -H . " fresh_files " 2>/dev/null"
        # ROOT/PID/stat:TEXT and ROOT/PID/statm:TEXT; a stat cut by a
        # newline in its comm comes as two lines of the same file.
        while ((file | getline line) > 0) {
            c = index(line, ":")
            if (c == 0) continue
            text = substr(line, c + 1)
            line = substr(line, length(root) + 2, c - length(root) - 2)
            if (line ~ /\/statm$/) statm[substr(line, 1, length(line) - 6)] = text
            else if (line ~ /\/stat$/) {
                p = substr(line, 1, length(line) - 5)
                stat[p] = (p in stat) ? stat[p] " " text : text
            }
        }
        close(file)
        for (i = 1; i <= news; i++) {
            p = fresh_pids[i]
            if (p in stat) take(p, stat[p], (p in statm) ? statm[p] : "")
        }
    }
    for (p in skip) if (skip[p] != seq) delete skip[p]
    for (p in seen) if (seen[p] != seq) { delete seen[p]; delete last_stat[p] }
    return cmd
}

# Prints process `p`: its statm line (empty when it could not be read),
# then its stat line `s`, as read.
function take(p, s, statm) {
    print "P " statm "|" s
    last_stat[p] = s
    seen[p] = seq
}

# Where /proc is missing: ps, whose CPU time has a resolution of 1 s
# (procps) or 10 ms (BSD), and whose start is known to a second.
function ps_table(   cmd, line) {
    cmd = lead "echo d $(date +%s); echo w $(uptime); ps -A -o pid= -o ppid= -o pgid= -o stat= -o time= -o etime= -o rss= -o comm=" wait
    # ps lists every process anyway: nothing to skip.
    if (!told(cmd) || (cmd | getline line) <= 0) { close(cmd); return "" }
    begin_snapshot()
    print "h ps"
    do {
        if (line ~ /^[dw] /) print line
        else print "q", line
    } while ((cmd | getline line) > 0)
    return cmd
}
