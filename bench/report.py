#!/usr/bin/python3
"""bench/report.py: turns the result lines of bench/*.sh into docs/benchmarks.md.

    bench/report.py RESULTS_DIR DOC PLOT_DIR

RESULTS_DIR holds results.tsv (lines "suite server mode metric value", tab
separated, written by the scripts' `result` helper), status.tsv (one line
"suite status seconds" per script run by bench/run.sh) and meta.tsv ("key
value"). DOC is the markdown written; PLOT_DIR gets one PNG per plot (drawn
with gnuplot). Only the standard library is used.
"""

import os
import subprocess
import sys
from collections import defaultdict

HTTP_MODES = ["keep-alive", "pipelined", "conn/request"]
HTTP_SERVERS = ["eddy", "nginx", "floor", "python"]
SCALE_SERVERS = ["eddy", "nginx", "floor", "poll"]
ECHO_SERVERS = ["eddy", "python", "xinetd"]
# The columns of the system-call table: a heading and the calls it sums.
SYSCALL_GROUPS = [
    ("read/recvfrom", ["read", "recvfrom", "readv", "recvmsg"]),
    ("write/sendto/writev", ["write", "sendto", "writev", "sendmsg", "sendfile"]),
    ("epoll_wait", ["epoll_wait", "epoll_pwait", "epoll_pwait2"]),
    ("epoll_ctl", ["epoll_ctl"]),
    ("accept4", ["accept4", "accept"]),
    ("close", ["close"]),
    ("shutdown", ["shutdown"]),
]
COLORS = {"eddy": "#1b9e77", "nginx": "#d95f02", "floor": "#7570b3", "poll": "#e7298a",
          "python": "#66a61e", "xinetd": "#e6ab02"}


def load(results_dir):
    res = {}
    top = defaultdict(list)
    path = os.path.join(results_dir, "results.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 5:
                    continue
                suite, server, mode, metric, value = parts
                if suite == "callgrind" and mode.startswith("top"):
                    top[server].append((int(mode[3:]), metric, float(value)))
                    continue
                try:
                    res[(suite, server, mode, metric)] = float(value)
                except ValueError:
                    pass
    status, meta = [], {}
    path = os.path.join(results_dir, "status.tsv")
    if os.path.exists(path):
        with open(path) as f:
            status = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    path = os.path.join(results_dir, "meta.tsv")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                meta[k] = v
    return res, top, status, meta


def fmt(v, digits=0):
    if v is None:
        return "–"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{}f}".format(v, digits)


def user_sys(user, system):
    """ "user / sys" µs, or – when either is missing."""
    if user is None or system is None:
        return "–"
    return "{} / {}".format(fmt(user, 2), fmt(system, 2))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Report:
    def __init__(self, res, top, status, meta, plot_dir, doc_dir):
        self.r, self.top, self.status, self.meta = res, top, status, meta
        self.plot_dir, self.doc_dir = plot_dir, doc_dir
        self.out = []
        self.plots = []

    def get(self, *key):
        return self.r.get(key)

    def w(self, line=""):
        self.out.append(line)

    # --- targets ------------------------------------------------------------

    def targets(self):
        g = self.get
        rows = []

        def row(what, value, target, op, limit, fmt_value):
            if value is None:
                met = "not measured"
            elif ((op == "<=" and value <= limit) or (op == ">=" and value >= limit)
                  or (op == "in" and limit[0] <= value <= limit[1])):
                met = "**met**"
            else:
                met = "not met"
            rows.append((what, fmt_value(value) if value is not None else "–", target, met))

        x = lambda v: fmt(v, 2) + "×"  # noqa: E731
        row("HTTP keep-alive: eddy µs CPU/request ÷ floor's",
            ratio(g("http", "eddy", "keep-alive", "us_per_req"), g("http", "floor", "keep-alive", "us_per_req")),
            "≤ 1.1×", "<=", 1.1, x)
        row("HTTP keep-alive: eddy µs CPU/request ÷ nginx's",
            ratio(g("http", "eddy", "keep-alive", "us_per_req"), g("http", "nginx", "keep-alive", "us_per_req")),
            "≤ 0.9×", "<=", 0.9, x)
        row("HTTP keep-alive: eddy req/s ÷ nginx's",
            ratio(g("http", "eddy", "keep-alive", "rps"), g("http", "nginx", "keep-alive", "rps")),
            "≥ 1×", ">=", 1.0, x)
        row("HTTP pipelined ×16: eddy req/s ÷ nginx's (pipelined too)",
            ratio(g("http", "eddy", "pipelined", "rps"), g("http", "nginx", "pipelined", "rps")),
            "≥ 8×", ">=", 8.0, x)
        row("HTTP pipelined ×16: eddy µs CPU/request ÷ floor's",
            ratio(g("http", "eddy", "pipelined", "us_per_req"), g("http", "floor", "pipelined", "us_per_req")),
            "≤ 1.5×", "<=", 1.5, x)
        row("HTTP new connection per request (ab, HTTP/1.0): eddy req/s ÷ nginx's",
            ratio(g("http", "eddy", "conn/request", "rps"), g("http", "nginx", "conn/request", "rps")),
            "≥ 1×", ">=", 1.0, x)
        row("user-space instructions/request (callgrind): eddy ÷ nginx",
            ratio(g("callgrind", "eddy", "keep-alive", "ir_per_req"), g("callgrind", "nginx", "keep-alive", "ir_per_req")),
            "(no target; lower is better)", "<=", float("inf"), x)
        row("memory per idle keep-alive connection: eddy (B)",
            g("scale", "eddy", "idle", "bytes_per_conn"), "≤ 128 B", "<=", 128, lambda v: fmt(v) + " B")
        row("idle connections: eddy req/s with {} idle ÷ with none".format(self.idle_max() or "N"),
            g("scale", "eddy", "flat", "ratio"), "≥ 0.95×", ">=", 0.95, x)
        echo = self.echo_ratios()
        row("echo: eddy messages/s ÷ tutorial 002's Python, lowest of {} configurations".format(len(echo) or "the"),
            min(echo.values()) if echo else None, "≥ 20×", ">=", 20.0, x)
        row("eddy-load req/s ÷ wrk's, the same nginx in the same round (pipelined ×16: nginx sets the "
            "pace), median of the rounds", g("load_vs_wrk", "eddy-load", "pipelined", "ratio_to_wrk"),
            "0.9× to 1.1×", "in", (0.9, 1.1), x)
        self.w("| what | measured | target | |")
        self.w("|---|---:|---|---|")
        for what, value, target, met in rows:
            if target.startswith("(no target"):
                met = ""
            self.w("| {} | {} | {} | {} |".format(what, value, target, met))
        self.w()
        if any(k[0] == "syscalls" for k in self.r):
            self.w("A target that asks eddy for less CPU than the kernel's share of a request is out of reach "
                   "whatever eddy does: the system calls per request and the user / system split below show "
                   "where each one stands.\n")

    def idle_max(self):
        counts = [int(k[2][5:]) for k in self.r if k[0] == "scale" and k[2].startswith("idle=") and k[3] == "rps"]
        return max(counts) if counts else None

    def echo_ratios(self):
        out = {}
        for (suite, server, mode, metric), v in self.r.items():
            if suite == "echo" and server == "eddy" and metric == "msgs_per_s":
                p = self.get("echo", "python", mode, "msgs_per_s")
                if p:
                    out[mode] = v / p
        return out

    # --- sections -----------------------------------------------------------

    def http(self):
        g = self.get
        if not any(k[0] == "http" for k in self.r):
            self.w("_Not measured (see the run status above)._\n")
            return
        self.w("| mode | server | req/s | µs CPU/request | µs user / sys | CPU busy server / client "
               "| req/s ÷ eddy's | µs CPU ÷ eddy's |")
        self.w("|---|---|---:|---:|---:|---:|---:|---:|")
        for mode in HTTP_MODES:
            er, ec = g("http", "eddy", mode, "rps"), g("http", "eddy", mode, "us_per_req")
            for s in HTTP_SERVERS:
                r, c = g("http", s, mode, "rps"), g("http", s, mode, "us_per_req")
                if r is None:
                    continue
                busy = "{:.0f}% / {:.0f}%".format(g("http", s, mode, "server_busy") or 0, g("http", s, mode, "client_busy") or 0)
                self.w("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    mode, s, fmt(r), fmt(c, 2),
                    user_sys(g("http", s, mode, "us_user_per_req"), g("http", s, mode, "us_sys_per_req")), busy,
                    "" if s == "eddy" else fmt(ratio(r, er), 2), "" if s == "eddy" else fmt(ratio(c, ec), 2)))
        self.w()
        self.http_user_sys()
        # Plots: req/s and CPU per request, modes clustered, one bar per server.
        rows = []
        for mode in HTTP_MODES:
            rows.append([mode] + [g("http", s, mode, "rps") for s in HTTP_SERVERS])
        self.histogram("http_rps", "HTTP requests/s by server and mode (one server CPU; log scale)",
                       "requests/s", HTTP_SERVERS, rows, log=True)
        rows = []
        for mode in HTTP_MODES:
            rows.append([mode] + [g("http", s, mode, "us_per_req") for s in HTTP_SERVERS])
        self.histogram("http_cpu", "Server CPU time per HTTP request (log scale; lower is better)",
                       "µs of CPU per request", HTTP_SERVERS, rows, log=True)

    def http_user_sys(self):
        """What the user/system split says about the ratios to nginx."""
        g = self.get
        eu, es = g("http", "eddy", "keep-alive", "us_user_per_req"), g("http", "eddy", "keep-alive", "us_sys_per_req")
        nc = g("http", "nginx", "keep-alive", "us_per_req")
        if eu is None or es is None or not eu + es:
            return
        text = ("In keep-alive mode eddy's own code (user time) is {:.0f}% of its CPU time per request ({} of {} µs); "
                "the rest is system time, the kernel's TCP and system-call work, which every server making the "
                "same calls pays (see the system calls below). That share is what bounds the ratios to nginx: "
                "eddy's system time alone is already {}".format(
                    100 * eu / (eu + es), fmt(eu, 2), fmt(eu + es, 2),
                    fmt(ratio(es, nc), 2) + "× nginx's whole CPU time per request" if nc else "most of it"))
        self.w(text + ", so no cut in user time can take eddy much below that.\n")

    def load_vs_wrk(self):
        g = self.get
        rows = [(m, c) for m in ("pipelined", "keep-alive") for c in ("wrk", "eddy-load")
                if g("load_vs_wrk", c, m, "req_per_s") is not None]
        if not rows:
            self.w("_Not measured (see the run status above)._\n")
            return
        self.w("| mode | client | req/s | requests counted ÷ nginx's count | client µs CPU/request "
               "| nginx µs CPU/request |")
        self.w("|---|---|---:|---:|---:|---:|")
        for m, c in rows:
            self.w("| {} | {} | {} | {} | {} | {} |".format(
                m, c, fmt(g("load_vs_wrk", c, m, "req_per_s")),
                fmt(g("load_vs_wrk", c, m, "counted_per_served"), 3),
                fmt(g("load_vs_wrk", c, m, "client_us_per_req"), 1),
                fmt(g("load_vs_wrk", c, m, "server_us_per_req"), 1)))
        self.w()
        self.w("Both clients count what nginx served (the difference is the requests still in flight when a "
               "run stops), so a gap in req/s is not a miscount: it is the cost per request of whichever side "
               "is saturated. Pipelined, nginx is (it answers a pipelined request at a time) and both clients "
               "send the same batches, so their figures measure nginx; the target compares them round by "
               "round (the median of the rounds' ratios), since nginx's own cost per request still moves "
               "from round to round on this virtual machine (last column). With one request in flight, one nginx "
               "worker and one client thread are close on two CPUs, so either can set the pace: the client's "
               "own cost (wrk arms and disarms `EPOLLOUT` for every request, two `epoll_ctl` calls eddy-load "
               "does not make), or nginx's, which on this virtual machine moves with the client's pattern (a "
               "client that sleeps in `epoll_wait` is woken for every response, and the wake-up is paid on "
               "nginx's CPU). The two CPU columns show which it was.\n")

    def syscalls(self):
        g = self.get
        rows = [(s, m) for m in HTTP_MODES for s in HTTP_SERVERS if g("syscalls", s, m, "per_req") is not None]
        if not rows:
            self.w("_Not measured (see the run status above)._\n")
            return
        self.w("| mode | server | system calls/request | " + " | ".join(h for h, _ in SYSCALL_GROUPS)
               + " | others | failed (EAGAIN…) |")
        self.w("|---|---|---:|" + "---:|" * (len(SYSCALL_GROUPS) + 2))
        for s, m in rows:
            total = g("syscalls", s, m, "per_req")
            cells, listed = [], 0.0
            for _, names in SYSCALL_GROUPS:
                v = sum(g("syscalls", s, m, "per_req_" + n) or 0 for n in names)
                listed += v
                cells.append(fmt(v, 2))
            self.w("| {} | {} | **{}** | {} | {} | {} |".format(
                m, s, fmt(total, 2), " | ".join(cells), fmt(max(total - listed, 0), 2),
                fmt(g("syscalls", s, m, "errors_per_req"), 2)))
        self.w()
        # eddy against the floor in the modes both were measured in.
        pairs = [(m, g("syscalls", "eddy", m, "per_req"), g("syscalls", "floor", m, "per_req"),
                  g("syscalls", "nginx", m, "per_req")) for m in HTTP_MODES]
        pairs = [p for p in pairs if p[1] is not None and p[2] is not None]
        if not pairs:
            return
        self.w("System calls per request: eddy makes {}.".format("; ".join(
            "{} in {} mode (the floor {}{})".format(
                fmt(e, 2), m, fmt(f, 2), "" if n is None else ", nginx " + fmt(n, 2))
            for m, e, f, n in pairs)))
        if all(abs(e - f) <= 0.1 * f for _, e, f, _ in pairs):
            self.w("eddy's system calls per request equal the floor's (one read and one write per request, or "
                   "per batch of 16 when pipelined), so CPU per request below the floor's is out of reach for any "
                   "epoll server on this kernel: what eddy spends is the kernel's work inside those calls (the "
                   "system time in the HTTP table) plus a small user-space share. A target that asks for less CPU "
                   "than the floor's, or for a large cut against a server that already makes the floor's calls "
                   "(nginx in keep-alive mode), is bounded by that kernel cost, not by eddy's code.")
        else:
            self.w("Where eddy makes more system calls than the floor, the difference is CPU that eddy could "
                   "still save.")
        self.w()

    def callgrind(self):
        g = self.get
        servers = [s for s in ["eddy", "nginx", "floor"] if g("callgrind", s, "keep-alive", "ir_per_req")]
        if not servers:
            self.w("_Not measured (see the run status above)._\n")
            return
        self.w("| server | instructions/request | ÷ eddy's |")
        self.w("|---|---:|---:|")
        e = g("callgrind", "eddy", "keep-alive", "ir_per_req")
        for s in servers:
            v = g("callgrind", s, "keep-alive", "ir_per_req")
            self.w("| {} | {} | {} |".format(s, fmt(v), "" if s == "eddy" else fmt(ratio(v, e), 2)))
        self.w()
        for s in servers:
            if not self.top.get(s):
                continue
            self.w("Top of {}'s profile (self cost per request):\n".format(s))
            self.w("| function | instructions/request | share |")
            self.w("|---|---:|---:|")
            total = g("callgrind", s, "keep-alive", "ir_per_req") or 1
            for _, fn, v in sorted(self.top[s]):
                self.w("| `{}` | {} | {:.0f}% |".format(fn.replace("|", "\\|"), fmt(v), 100 * v / total))
            self.w()

    def scale(self):
        g = self.get
        mem = [(s, g("scale", s, "idle", "bytes_per_conn")) for s in SCALE_SERVERS]
        mem = [(s, v) for s, v in mem if v is not None]
        if not mem:
            self.w("_Not measured (see the run status above)._\n")
            return
        n = self.idle_max()
        self.w("Memory: growth of the server's resident set (VmRSS) while it holds {} idle keep-alive connections "
               "(each after one request), divided by their number. Kernel socket memory is not in it.\n".format(
                   fmt(n) if n else "the"))
        self.w("| server | bytes per idle connection | ÷ eddy's |")
        self.w("|---|---:|---:|")
        e = g("scale", "eddy", "idle", "bytes_per_conn")
        for s, v in mem:
            self.w("| {} | {} | {} |".format(s, fmt(v), "" if s == "eddy" else fmt(ratio(v, e), 2)))
        self.w()
        self.histogram("memory", "Memory per idle keep-alive connection (log scale; lower is better)",
                       "bytes per connection", [s for s, _ in mem],
                       [["idle connection"] + [max(v, 1) for _, v in mem]], log=True,
                       target=(128, "eddy's target: 128 B"))
        counts = sorted({int(k[2][5:]) for k in self.r if k[0] == "scale" and k[2].startswith("idle=")})
        flat = [s for s in SCALE_SERVERS if g("scale", s, "idle=0", "rps")]
        if not flat or not counts:
            return
        self.w("Throughput next to idle connections: wrk's keep-alive req/s on 100 active connections while "
               "N idle ones are held open.\n")
        self.w("| server | " + " | ".join("req/s, {} idle".format(fmt(c)) for c in counts)
               + " | req/s ratio {} ÷ 0 | CPU/request ratio 0 ÷ {} |".format(fmt(counts[-1]), fmt(counts[-1])))
        self.w("|---|" + "---:|" * (len(counts) + 2))
        for s in flat:
            cells = [fmt(g("scale", s, "idle={}".format(c), "rps")) for c in counts]
            self.w("| {} | {} | {} | {} |".format(s, " | ".join(cells), fmt(g("scale", s, "flat", "ratio"), 2),
                                               fmt(g("scale", s, "flat", "cpu_ratio"), 2)))
        self.w()
        self.w("The CPU/request ratio asks the same question of the server's CPU time per request, which "
               "other load on the machine disturbs less than req/s; 1 means idle connections cost nothing.\n")
        # Plot: req/s relative to none idle, one line per server.
        data = []
        for c in counts:
            row = [c]
            for s in flat:
                v, z = g("scale", s, "idle={}".format(c), "rps"), g("scale", s, "idle=0", "rps")
                row.append(v / z if v is not None and z else None)
            data.append(row)
        self.lines("idle_flat", "Keep-alive throughput next to idle connections (100 active)",
                   "idle connections held open", "req/s ÷ req/s with no idle connection", flat, data,
                   target=(0.95, "eddy's target: 0.95"))

    def echo(self):
        g = self.get
        modes = sorted({k[2] for k in self.r if k[0] == "echo" and k[3] == "msgs_per_s"},
                       key=lambda m: (int(m.split(",")[1][2:]), int(m.split(",")[0][2:])))
        if not modes:
            self.w("_Not measured (see the run status above)._\n")
            return
        servers = [s for s in ECHO_SERVERS if any(g("echo", s, m, "msgs_per_s") for m in modes)]
        self.w("| connections | message | " + " | ".join("{} msg/s".format(s) for s in servers)
               + " | eddy ÷ python | eddy ÷ xinetd | eddy µs CPU/msg | eddy µs user / sys "
               "| python µs CPU/msg | python µs user / sys |")
        self.w("|---:|---:|" + "---:|" * (len(servers) + 6))
        for m in modes:
            c, size = m.split(",")
            vals = [g("echo", s, m, "msgs_per_s") for s in servers]
            e = g("echo", "eddy", m, "msgs_per_s")
            self.w("| {} | {} B | {} | {} | {} | {} | {} | {} | {} |".format(
                c[2:], size[2:], " | ".join(fmt(v) for v in vals),
                fmt(ratio(e, g("echo", "python", m, "msgs_per_s")), 1),
                fmt(ratio(e, g("echo", "xinetd", m, "msgs_per_s")), 1),
                fmt(g("echo", "eddy", m, "us_per_msg"), 2),
                user_sys(g("echo", "eddy", m, "us_user_per_msg"), g("echo", "eddy", m, "us_sys_per_msg")),
                fmt(g("echo", "python", m, "us_per_msg"), 2),
                user_sys(g("echo", "python", m, "us_user_per_msg"), g("echo", "python", m, "us_sys_per_msg"))))
        self.w()
        self.echo_user_sys(modes)
        for m in modes:
            for s in servers:
                n = g("echo", s, m, "errors")
                if n:
                    self.w("- **{} ({}): eddy-load counted {:.0f} errors** (wrong or missing replies); "
                           "its figure counts only correct ones.".format(s, m.replace(",", ", "), n))
        self.w()
        rows = []
        for m in modes:
            c, size = m.split(",")
            b = int(size[2:])
            label = "{} KiB".format(b // 1024) if b >= 1024 and b % 1024 == 0 else "{} B".format(b)
            rows.append(["{} conn, {}".format(c[2:], label)] + [g("echo", s, m, "msgs_per_s") for s in servers])
        self.histogram("echo", "Echo messages/s (log scale)", "messages/s", servers, rows, log=True)

    def echo_user_sys(self, modes):
        """What the user/system split says about the ratio to the Python server."""
        g = self.get
        shares, bounds = [], []
        for m in modes:
            eu, es = g("echo", "eddy", m, "us_user_per_msg"), g("echo", "eddy", m, "us_sys_per_msg")
            p = g("echo", "python", m, "us_per_msg")
            if eu is None or es is None or not eu + es:
                continue
            shares.append(100 * eu / (eu + es))
            if p and es:
                bounds.append(p / es)
        if not shares:
            return
        text = ("eddy's user time is {:.0f}–{:.0f}% of its CPU time per message; the rest is system time, the "
                "kernel's TCP and system-call work, which the Python server pays as well. That is what bounds the "
                "ratio to it: ".format(min(shares), max(shares)))
        if bounds:
            text += ("even with no user time at all, eddy could spend at most {}–{}× less CPU per message than the "
                     "Python server.".format(fmt(min(bounds), 1), fmt(max(bounds), 1)))
        else:
            text += "cutting eddy's user time further cannot raise it much."
        self.w(text + "\n")

    # --- plots --------------------------------------------------------------

    def gnuplot(self, name, script, data):
        os.makedirs(self.plot_dir, exist_ok=True)
        dat = os.path.join(self.plot_dir, name + ".dat")
        png = os.path.join(self.plot_dir, name + ".png")
        with open(dat, "w") as f:
            for row in data:
                f.write("\t".join("-" if v is None else str(v) for v in row) + "\n")
        head = ('set terminal pngcairo size 1000,480 font "sans,10"\nset output "{}"\n'
                'set datafile separator "\\t"\nset datafile missing "-"\nset grid ytics\n'
                'set key outside right top\n').format(png)
        try:
            subprocess.run(["gnuplot"], input=head + script.replace("DATA", '"{}"'.format(dat)),
                           text=True, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            err = getattr(e, "stderr", "") or str(e)
            sys.stderr.write("report.py: gnuplot failed for {}: {}\n".format(name, err))
            return
        finally:
            os.unlink(dat)
        self.plots.append(name)
        rel = os.path.relpath(png, self.doc_dir)
        self.w("![{}]({})\n".format(name, rel))

    def histogram(self, name, title, ylabel, series, rows, log=False, target=None):
        if not any(v is not None for row in rows for v in row[1:]):
            return
        plots = []
        for i, s in enumerate(series):
            plots.append('DATA using {}:xtic(1) title "{}" lc rgb "{}"'.format(i + 2, s, COLORS.get(s, "#666666")))
        script = ('set title "{}"\nset ylabel "{}"\nset style data histogram\n'
                  'set style histogram cluster gap 1\nset style fill solid 0.85 border -1\nset boxwidth 0.9\n'
                  '{}set yrange [{}:*]\nplot {}\n').format(
                      title, ylabel, "set logscale y\n" if log else "", "1" if log else "0", ", ".join(plots))
        if target is not None:
            script = script.replace("plot ", "plot {} title \"{}\" with lines dt 2 lw 2 lc rgb \"#000000\", ".format(*target), 1)
        self.gnuplot(name, script, rows)

    def lines(self, name, title, xlabel, ylabel, series, rows, target=None):
        plots = []
        for i, s in enumerate(series):
            plots.append('DATA using 1:{} title "{}" with linespoints lw 2 pt 7 lc rgb "{}"'.format(
                i + 2, s, COLORS.get(s, "#666666")))
        script = ('set title "{}"\nset xlabel "{}"\nset ylabel "{}"\nset yrange [0:*]\n'
                  'set format x "%.0f"\nplot {}\n').format(title, xlabel, ylabel, ", ".join(plots))
        if target is not None:
            script = script.replace("plot ", "plot {} title \"{}\" with lines dt 2 lw 2 lc rgb \"#000000\", ".format(*target), 1)
        self.gnuplot(name, script, rows)

    # --- the document -------------------------------------------------------

    def write(self):
        m = self.meta
        self.w("# eddy benchmarks")
        self.w()
        self.w("<!-- Generated by `make bench` (bench/run.sh, bench/report.py): edit those, not this file. -->")
        self.w()
        self.w("Every figure here is a ratio against a peer measured in the same run, by the scripts in "
               "`bench/`: nginx (one worker, `access_log off`, `return 200 \"Hello, world!\"`), the "
               "tutorials' Python servers, xinetd's built-in echo, and two baselines written only to measure "
               "with: **floor** (`bench/floor.c`), the cheapest epoll loop that can answer wrk (read, count "
               "request ends, write fixed responses, no parsing), which marks this machine's system-call "
               "limit, and **poll** (`bench/pollfloor.c`), the same loop on `poll()`. The server runs pinned "
               "to one CPU, the client to the other (`taskset`), all on 127.0.0.1. Absolute numbers depend on "
               "the machine and its load; compare the ratios.")
        self.w()
        self.w("## How to reproduce")
        self.w()
        self.w("```sh")
        self.w("make bench                       # everything, then this page (about 10 minutes)")
        self.w("BENCH_SECONDS=2 make bench       # quicker and noisier")
        self.w("BENCH_ONLY='http scale' make bench   # some suites only: http scale callgrind echo syscalls load_vs_wrk")
        self.w("bench/http.sh; bench/scale.sh; bench/callgrind.sh; bench/echo.sh; bench/syscalls.sh; bench/load_vs_wrk.sh"
               "   # one suite, printed only")
        self.w("```")
        self.w()
        self.w("`make bench` installs what it needs from Debian's packages (`scripts/ensure-deps bench`: "
               "nginx, wrk, apache2-utils, gnuplot-nox, xinetd, valgrind, strace) when run as root, builds eddy, the baselines (`build/bench/`) and the "
               "load generator, runs each suite under a time limit, and writes this page and its plots "
               "(`docs/benchmarks/`). Raw results stay in `build/bench/results/`. Each script's header lists "
               "its settings (connections, rounds, durations). Run it on an otherwise idle machine: with other "
               "work on the CPUs, req/s and CPU time swing by tens of percent between runs; instruction counts (callgrind) do not.")
        self.w()
        self.w("## This run")
        self.w()
        self.w("- {} · eddy {} · {} · {} CPUs ({}) · BENCH_SECONDS={}".format(
            m.get("date", "?"), m.get("commit", "?"), m.get("kernel", "?"), m.get("cpus", "?"),
            m.get("cpu_model", "?"), m.get("seconds", "?")))
        self.w("- load average before / after: {} / {}".format(m.get("load_before", "?"), m.get("load_after", "?")))
        for note in filter(None, [m.get("note")]):
            self.w("- **{}**".format(note))
        try:
            busy = float(m.get("load_before", "0").split()[0])
        except ValueError:
            busy = 0
        if busy > 0.5:
            self.w("- **The machine was not idle when this run started (load average {:.1f}): its figures, "
                   "ratios included, are noisy.**".format(busy))
        for line in self.status:
            suite, state, secs = (line + ["", "", ""])[:3]
            self.w("- {}: {} ({} s)".format(suite, state, secs))
        self.w()
        self.w("## Targets")
        self.w()
        self.targets()
        self.w("## HTTP: one worker, wrk with 100 connections, ab for a new connection per request")
        self.w()
        self.w("Keep-alive: `wrk -t1 -c100`; pipelined: the same with 16 requests per write "
               "(`bench/pipeline.lua`); new connection per request: `ab` without `-k` (HTTP/1.0). µs "
               "CPU/request is the server's utime+stime (`/proc/PID/stat`) over the run divided by the "
               "requests served; it leaves out softirq time (loopback TCP), which no process is charged for. "
               "µs user / sys splits it into user time (the server's own code) and system time (the kernel's, "
               "inside the server's system calls), each the median of its own. "
               "CPU busy tells who set the pace: a client CPU at 100% with the server's below means req/s "
               "measured the client. The floor never closes a connection, so ab cannot drive it; the Python "
               "server answers one request per connection, so only ab can. Median of the rounds.")
        self.w()
        self.http()
        self.w("## Instructions per request (callgrind)")
        self.w()
        self.w("User-space instructions per keep-alive request, one connection, counted by "
               "`valgrind --tool=callgrind`: two runs per server, the difference divided by the difference "
               "in requests, so start-up cancels out. Independent of the machine's load.")
        self.w()
        self.callgrind()
        self.w("## System calls per request (strace)")
        self.w()
        self.w("System calls per HTTP request, counted by `strace -c -f` attached to each server for one short "
               "run per mode (`bench/syscalls.sh`; connection set-up and close included), divided by the "
               "requests the client completed. strace slows the server many times over, so only these counts "
               "mean anything, never its speed; epoll_wait per request also falls as the server slows (more "
               "connections ready per wake-up), so it is lower here than without strace. Failed calls (mostly "
               "EAGAIN) are counted in the total and again in their own column.")
        self.w()
        self.syscalls()
        self.w("## eddy-load against wrk")
        self.w()
        self.w("`bench/load_vs_wrk.sh`: the same nginx (as above) driven by wrk and by eddy-load, 100 connections, "
               "one thread, alternating who goes first, median of the rounds; pipelined: 16 requests per write "
               "and the next 16 when all are answered (wrk with `bench/pipeline.lua`, eddy-load `-P 16`), "
               "keep-alive: one request in flight per connection. Each client's count of requests is checked against nginx's own (`stub_status`, read "
               "before and after each run), and the CPU time per request is taken for the client "
               "(`/usr/bin/time`) and for nginx (`/proc/PID/stat`).")
        self.w()
        self.load_vs_wrk()
        self.w("## Idle connections")
        self.w()
        self.scale()
        self.w("## Echo")
        self.w()
        self.w("Messages/s through each echo server, measured with `build/eddy-load` (closed loop: each "
               "connection sends a message and waits for all of it to come back). python = tutorial 002's "
               "epoll echo server (`bench/peers/seed002_echo.py`), xinetd = its built-in `echo` service "
               "(a process forked per connection). Server CPU time per message is measured for eddy and python "
               "only (xinetd's work is spread over its per-connection processes), also split into user and "
               "system time. With one connection every message is a full round trip of wake-ups, so scheduling "
               "latency dominates; a server that "
               "writes a 16 KiB message back in pieces (the tutorial's `recv(1024)`) can meet Nagle's "
               "algorithm and the peer's delayed ACK, about 40 ms per message.")
        self.w()
        self.echo()
        return "\n".join(self.out) + "\n"


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: report.py RESULTS_DIR DOC PLOT_DIR\n")
        sys.exit(2)
    results_dir, doc, plot_dir = sys.argv[1:]
    res, top, status, meta = load(results_dir)
    # Plots of an earlier run must not survive next to this run's page.
    if os.path.isdir(plot_dir):
        for name in os.listdir(plot_dir):
            if name.endswith(".png"):
                os.unlink(os.path.join(plot_dir, name))
    rep = Report(res, top, status, meta, plot_dir, os.path.dirname(os.path.abspath(doc)))
    text = rep.write()
    os.makedirs(os.path.dirname(os.path.abspath(doc)), exist_ok=True)
    with open(doc, "w") as f:
        f.write(text)
    print("report.py: wrote {} ({} plots in {})".format(doc, len(rep.plots), plot_dir))


if __name__ == "__main__":
    main()
