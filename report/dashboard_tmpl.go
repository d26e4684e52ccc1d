package report

// dashboardTemplates are the dashboard's pages. Everything is inline (CSS,
// the live-refresh script, SVG charts) so the binary serves it with no
// CDN and the CSP can forbid every other origin.
const dashboardTemplates = `
{{define "head"}}<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · kefu reports</title>
<style>
:root{--fg:#1b1f23;--mut:#6a737d;--bd:#e1e4e8;--bg:#f6f8fa;--ac:#0072B2;--bad:#D55E00;--ok:#009E73}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 -apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;color:var(--fg);background:#fff}
header{display:flex;gap:18px;align-items:center;padding:10px 20px;border-bottom:1px solid var(--bd);background:var(--bg)}
header b{font-size:16px}header nav a{margin-right:14px;color:var(--fg);text-decoration:none}header nav a.on{color:var(--ac);font-weight:600;border-bottom:2px solid var(--ac)}
header .who{margin-left:auto;color:var(--mut)}
main{padding:16px 20px;max-width:1480px}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:0 0 14px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--mut)}
form.filters input,form.filters select{font:inherit;padding:3px 6px;border:1px solid var(--bd);border-radius:4px}
button{font:inherit;padding:4px 12px;border:1px solid var(--ac);background:var(--ac);color:#fff;border-radius:4px;cursor:pointer}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-bottom:16px}
.tile{border:1px solid var(--bd);border-radius:6px;padding:8px 12px;background:#fff}
.tile .k{font-size:12px;color:var(--mut)}.tile .v{font-size:24px;font-weight:600}.tile .n{font-size:11px;color:var(--mut)}
.tile.warn .v{color:var(--bad)}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(640px,1fr));gap:14px}
.card{border:1px solid var(--bd);border-radius:6px;padding:10px 12px;margin-bottom:14px;overflow:auto}
.card h2{font-size:15px;margin:0 0 8px;display:flex;gap:10px;align-items:baseline}.card h2 a{font-size:12px;font-weight:400}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--bd);padding:4px 8px;text-align:right;white-space:nowrap}
th{background:var(--bg);font-weight:600;font-size:12px;cursor:help}th:first-child,td:first-child{text-align:left}
td small{color:var(--mut);margin-left:3px}tr.total td{font-weight:600;background:var(--bg)}
td a{color:inherit;text-decoration:none;border-bottom:1px dotted var(--mut)}
.chart{max-width:100%;height:auto}.chart .ct{font-weight:600;font-size:13px}.chart .ax{font-size:11px;fill:#586069}.chart .lg{font-size:12px}
.chart .grid{stroke:#eaecef}.chart .target{stroke:var(--bad);stroke-dasharray:4 3}.chart .line{fill:none;stroke-width:1.6}.chart .line.all{stroke-width:2.6}
.defs{font-size:12px;color:var(--mut)}.defs code{color:var(--fg)}
.mut{color:var(--mut)}.bad{color:var(--bad)}.ok{color:var(--ok)}
ul.convs{columns:4;font-family:ui-monospace,Menlo,monospace;font-size:12px}
</style></head><body>
<header><b>kefu 客服报表</b><nav>
<a href="./{{with .Params.Encode}}?{{.}}{{end}}" class="{{if eq .Nav "overview"}}on{{end}}">Overview</a>
<a href="kpi{{with .Params.Encode}}?{{.}}{{end}}" class="{{if eq .Nav "kpi"}}on{{end}}">KPIs</a>
<a href="funnel{{with .Params.Encode}}?{{.}}{{end}}" class="{{if eq .Nav "funnel"}}on{{end}}">Funnel</a>
<a href="cases" class="{{if eq .Nav "cases"}}on{{end}}">Cases</a>
<a href="definitions" class="{{if eq .Nav "definitions"}}on{{end}}">Definitions</a>
</nav><span class="who">{{.V.P.Name}} {{.V.P.User}} · {{.V.P.Role}}</span></header><main>
{{end}}

{{define "filters"}}<form class="filters" method="get">
<label>From<input type="date" name="from" value="{{.Q.From}}"></label>
<label>To<input type="date" name="to" value="{{.Q.To}}"></label>
<label>Store<select name="store"><option value="">all I can see</option>{{range .Stores}}<option value="{{str .ID}}"{{if eqs .ID $.Q.Store}} selected{{end}}>{{indent .Depth}}{{.Label}} ({{str .ID}})</option>{{end}}</select></label>
<label>Agent<input name="agent" value="{{.Q.Agent}}" size="10"></label>
<label>Channel<input name="channel" value="{{.Q.Channel}}" size="8"></label>
{{if ne .Nav "funnel"}}<label>Group by<select name="by">{{range dims}}<option{{if eq . (printf "%s" $.Q.By)}} selected{{end}}>{{.}}</option>{{end}}</select></label>{{end}}
<button type="submit">Apply</button></form>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "kpitable"}}<table id="kpi-table"><thead><tr><th>{{printf "%s" .Table.By}}</th>
{{range .Table.Definitions}}<th title="{{.Title}} v{{.Version}} #{{.Hash}} — {{.Formula}}{{with params .Params}} [{{.}}]{{end}}">{{.Title}}</th>{{end}}
<th title="contacts started">Contacts</th></tr></thead><tbody>
{{range .Table.Rows}}{{$row := .}}<tr data-key="{{.Key}}"><td>{{indent .Depth}}<a class="drill" href="{{link "drill" $.Params "by" (printf "%s" $.Table.By) "key" .Key}}">{{.Label}}</a></td>
{{range $i, $v := .KPIs}}{{$d := def $.Table.Definitions $i}}<td>{{with drillFor $v.Name}}<a href="{{link "drill" $.Params "by" (printf "%s" $.Table.By) "key" $row.Key "filter" .}}">{{fmtv $v $d.Unit}}</a>{{else}}{{fmtv $v $d.Unit}}{{end}}<small>n={{$v.N}}</small></td>{{end}}
<td>{{.Counts.Contacts}}</td></tr>{{end}}
<tr class="total"><td>Total</td>{{range $i, $v := .Table.Total.KPIs}}{{$d := def $.Table.Definitions $i}}<td>{{fmtv $v $d.Unit}}<small>n={{$v.N}}</small></td>{{end}}<td>{{.Table.Total.Counts.Contacts}}</td></tr>
</tbody></table>
<div class="defs">FCR of contacts from {{.Table.ProvisionalFrom}} on is provisional: their repeat window has not passed yet.</div>
<div class="defs">{{range .Table.Definitions}}<div><code>{{.Name}} v{{.Version}} #{{.Hash}}</code>{{with params .Params}} [{{.}}]{{end}} — {{.Formula}}</div>{{end}}</div>{{end}}

{{define "funneltable"}}<table id="funnel-table"><thead><tr><th>Stage</th><th>Count</th><th>Conversion</th><th>Drop-offs</th></tr></thead><tbody>
{{range .Funnel.Stages}}<tr data-stage="{{.Name}}"><td><a href="{{link "drill" $.Params "filter" .Filter}}">{{.Label}}</a></td><td>{{.Count}}</td>
<td>{{if .Parent}}{{pct .Conversion}} <small>of {{.Parent}}</small>{{end}}</td>
<td style="text-align:left;white-space:normal">{{range $i, $d := .Drops}}{{if $i}}, {{end}}{{$d.Reason}} <b>{{$d.Count}}</b>{{end}}</td></tr>{{end}}
</tbody></table>{{end}}

{{define "overview"}}{{template "head" .}}{{template "filters" .}}
<section class="tiles" id="live" data-target="{{.Live.Target}}">
<div class="tile"><div class="k">Queue length</div><div class="v" id="live-queue">{{optint .Live.QueueLength}}</div></div>
<div class="tile"><div class="k">Longest wait</div><div class="v" id="live-wait">{{optwait .Live.LongestWaitSeconds}}</div></div>
<div class="tile"><div class="k">Agents online / busy</div><div class="v"><span id="live-online">{{optint .Live.AgentsOnline}}</span> / <span id="live-busy">{{optint .Live.AgentsBusy}}</span></div></div>
<div class="tile"><div class="k">Service level today</div><div class="v" id="live-sl">{{fmtv .Live.ServiceLevel "%"}}</div><div class="n">target {{.Live.Target}}% · n=<span id="live-sl-n">{{.Live.ServiceLevel.N}}</span></div></div>
<div class="tile"><div class="k">ASA today</div><div class="v" id="live-asa">{{fmtv .Live.ASA "s"}}</div></div>
<div class="tile"><div class="k">NPS today</div><div class="v" id="live-nps">{{fmtv .Live.NPS "nps"}}</div><div class="n">n=<span id="live-nps-n">{{.Live.NPS.N}}</span></div></div>
<div class="tile"><div class="k">Open cases</div><div class="v" id="live-open">{{.Live.OpenCases}}</div></div>
<div class="tile{{if .Live.OverdueCases}} warn{{end}}" id="tile-overdue"><div class="k">Overdue cases</div><div class="v" id="live-overdue">{{.Live.OverdueCases}}</div></div>
</section>
<div class="mut" style="font-size:12px;margin:-8px 0 12px">Live view updated <span id="live-at">{{tm .Live.At}}</span> · contacts today <span id="live-contacts">{{.Live.Contacts}}</span></div>
<div class="grid2">
<div class="card">{{index .Charts 0}}<div><a href="{{link "api/trend.csv" .Params "kpi" "nps"}}">CSV</a></div></div>
<div class="card">{{index .Charts 1}}<div><a href="{{link "api/trend.csv" .Params "kpi" "service_level"}}">CSV</a></div></div>
</div>
<div class="card"><h2>Funnel <a href="{{link "funnel" .Params}}">details</a> <a href="{{link "api/funnel.csv" .Params}}">CSV</a></h2>{{index .Charts 2}}</div>
<div class="card"><h2>KPIs by {{printf "%s" .Table.By}} <a href="{{link "api/kpi.csv" .Params "by" (printf "%s" .Table.By)}}">CSV</a></h2>{{template "kpitable" .}}</div>
<div class="card"><h2>Open cases <a href="cases">all</a> <a href="api/cases.csv">CSV</a></h2>{{template "casetable" .}}</div>
<script>
(function(){
  var q = location.search, el = function(id){ return document.getElementById(id); };
  function val(v, unit){ if(!v || !v.ok) return "\u2014"; return unit==="nps" ? Math.round(v.value).toString() : v.value.toFixed(1) + unit; }
  function opt(n){ return n === null || n === undefined ? "\u2014" : String(n); }
  function wait(s){ if(s === null || s === undefined) return "\u2014"; s = Math.round(s); return s >= 60 ? Math.floor(s/60) + "m" + (s%60) + "s" : s + "s"; }
  function tick(){
    fetch("api/live" + q, {credentials: "same-origin"}).then(function(r){ return r.ok ? r.json() : null; }).then(function(j){
      if(!j) return;
      el("live-queue").textContent = opt(j.queue_length);
      el("live-wait").textContent = wait(j.longest_wait_seconds);
      el("live-online").textContent = opt(j.agents_online);
      el("live-busy").textContent = opt(j.agents_busy);
      el("live-sl").textContent = val(j.service_level, "%");
      el("live-sl-n").textContent = j.service_level.n;
      el("live-asa").textContent = val(j.asa_seconds, " s");
      el("live-nps").textContent = val(j.nps, "nps");
      el("live-nps-n").textContent = j.nps.n;
      el("live-open").textContent = j.open_cases;
      el("live-overdue").textContent = j.overdue_cases;
      el("tile-overdue").className = "tile" + (j.overdue_cases ? " warn" : "");
      el("live-contacts").textContent = j.contacts_today;
      el("live-at").textContent = new Date(j.at).toLocaleTimeString();
      document.body.setAttribute("data-live", "ok");
    }).catch(function(){});
  }
  tick(); setInterval(tick, 5000);
})();
</script>
{{template "foot" .}}{{end}}

{{define "casetable"}}<table id="case-table"><thead><tr><th>Case</th><th>Conversation</th><th>Store</th><th>Opened</th><th>Deadline</th><th>Called back</th><th>Status</th></tr></thead><tbody>
{{range .Cases}}<tr><td>{{.ID}}</td><td>{{.Conv}}</td><td>{{str .Store}}</td><td>{{tm .Opened}}</td><td>{{tm .Deadline}}</td><td>{{if .Called}}yes{{else}}no{{end}}</td><td>{{if .Overdue}}<span class="bad">overdue</span>{{else}}<span class="ok">in time</span>{{end}}</td></tr>
{{else}}<tr><td colspan="7" class="mut">no open cases</td></tr>{{end}}{{if .More}}<tr><td colspan="7"><a href="cases">more…</a></td></tr>{{end}}
</tbody></table>{{end}}

{{define "kpi"}}{{template "head" .}}{{template "filters" .}}
<div class="card"><h2>KPIs by {{printf "%s" .Table.By}} <a id="kpi-csv" href="{{link "api/kpi.csv" .Params "by" (printf "%s" .Table.By)}}">CSV</a> <a href="{{link "api/kpi" .Params "by" (printf "%s" .Table.By)}}">JSON</a></h2>{{template "kpitable" .}}</div>
{{template "foot" .}}{{end}}

{{define "funnel"}}{{template "head" .}}{{template "filters" .}}
<div class="card"><h2>Funnel {{.Q.From}} – {{.Q.To}} <a href="{{link "api/funnel.csv" .Params}}">CSV</a></h2>{{index .Charts 0}}</div>
<div class="card">{{template "funneltable" .}}</div>
{{template "foot" .}}{{end}}

{{define "drill"}}{{template "head" .}}
<div class="card"><h2>Conversations{{if .Key}} · {{printf "%s" .Q.By}} {{.Key}}{{end}}{{if .Filter}} · {{.Filter}}{{end}} <a href="{{link "api/drill.csv" .Params "by" (printf "%s" .Q.By) "key" .Key "filter" .Filter}}">CSV</a></h2>
<p class="mut">{{len .Drill}} conversations (at most 2000; contacts older than the keep window are not listed). Other filters:
{{range .Filters}}{{if .}}<a href="{{link "drill" $.Params "by" (printf "%s" $.Q.By) "key" $.Key "filter" .}}">{{.}}</a> {{end}}{{end}}</p>
<table id="drill-table"><thead><tr><th>Conversation</th><th>Customer</th><th>Store</th><th>Channel</th><th>Agent</th><th>Start</th><th>Outcome</th><th>Score</th></tr></thead><tbody>
{{range .Drill}}<tr><td class="conv">{{.Conv}}</td><td>{{.Customer}}</td><td>{{str .Store}}</td><td>{{.Channel}}</td><td>{{.Agent}}</td><td>{{tm .Start}}</td><td>{{.Outcome}}</td><td>{{with .Score}}{{.}}{{end}}</td></tr>{{end}}
</tbody></table></div>
{{template "foot" .}}{{end}}

{{define "cases"}}{{template "head" .}}
<div class="card"><h2>Open detractor cases <a href="api/cases.csv">CSV</a></h2>{{template "casetable" .}}</div>
{{template "foot" .}}{{end}}

{{define "definitions"}}{{template "head" .}}
<div class="card"><h2>KPI definitions <a href="api/definitions.csv">CSV</a></h2>
<table id="defs-table"><thead><tr><th>KPI</th><th>Version</th><th>Hash</th><th>Parameters</th><th>Since</th><th>Formula</th></tr></thead><tbody>
{{range .Defs}}<tr><td>{{.Title}} <small class="mut">{{.Name}}</small></td><td>v{{.Version}}</td><td><code>{{.Hash}}</code></td><td>{{params .Params}}</td><td>{{if not .Since.IsZero}}{{.Since.Format "2006-01-02 15:04"}}{{end}}</td><td style="text-align:left;white-space:normal">{{.Formula}}</td></tr>{{end}}
</tbody></table></div>
{{template "foot" .}}{{end}}
`
