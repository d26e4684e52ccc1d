package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// palette is colour-blind-friendly (Okabe–Ito); "All" is always black.
var palette = []string{"#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#999999", "#F0E442"}

// LineChart renders series as an inline SVG line chart (no scripts, no
// external assets) with y from yMin to yMax and an optional dashed target
// line. Periods without data break the line.
func LineChart(id, title string, series []Series, yMin, yMax float64, target *float64, unit string) template.HTML {
	const w, h, left, right, top, bottom = 680.0, 260.0, 48.0, 150.0, 28.0, 36.0
	pw, ph := w-left-right, h-top-bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="%s" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		html.EscapeString(id), html.EscapeString(title), w, h, w, h)
	fmt.Fprintf(&b, `<text x="%.0f" y="18" class="ct">%s</text>`, left, html.EscapeString(title))
	y := func(v float64) float64 { return top + ph - (v-yMin)/(yMax-yMin)*ph }
	for i := 0; i <= 4; i++ {
		v := yMin + (yMax-yMin)*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" class="grid"/><text x="%.0f" y="%.1f" class="ax" text-anchor="end">%.0f%s</text>`,
			left, left+pw, y(v), y(v), left-6, y(v)+4, v, html.EscapeString(unit))
	}
	if target != nil {
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" class="target"/><text x="%.0f" y="%.1f" class="ax">target %.0f%s</text>`,
			left, left+pw, y(*target), y(*target), left+4, y(*target)-4, *target, html.EscapeString(unit))
	}
	n := 0
	if len(series) > 0 {
		n = len(series[0].Points)
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="ax">no data</text></svg>`, left+pw/2-20, top+ph/2)
		return template.HTML(b.String())
	}
	x := func(i int) float64 {
		if n == 1 {
			return left + pw/2
		}
		return left + pw*float64(i)/float64(n-1)
	}
	step := max(1, int(math.Ceil(float64(n)/8)))
	for i, p := range series[0].Points {
		if i%step == 0 || i == n-1 {
			lbl := p.Period
			if len(lbl) == 10 {
				lbl = lbl[5:] // MM-DD
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" class="ax" text-anchor="middle">%s</text>`, x(i), h-bottom+16, html.EscapeString(lbl))
		}
	}
	for si, s := range series {
		col := palette[si%len(palette)]
		var d strings.Builder
		pen := false
		for i, p := range s.Points {
			if !p.OK {
				pen = false
				continue
			}
			v := math.Min(math.Max(p.Value, yMin), yMax)
			if pen {
				fmt.Fprintf(&d, "L%.1f %.1f ", x(i), y(v))
			} else {
				fmt.Fprintf(&d, "M%.1f %.1f ", x(i), y(v))
				pen = true
			}
		}
		cls := "line"
		if si == 0 {
			cls = "line all"
		}
		fmt.Fprintf(&b, `<path d="%s" class="%s" stroke="%s" data-series="%s"/>`, strings.TrimSpace(d.String()), cls, col, html.EscapeString(s.Key))
		for i, p := range s.Points {
			if p.OK {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s %s: %.1f%s (n=%d)</title></circle>`,
					x(i), y(math.Min(math.Max(p.Value, yMin), yMax)), col, html.EscapeString(s.Label), html.EscapeString(p.Period), p.Value, html.EscapeString(unit), p.N)
			}
		}
		ly := top + 4 + float64(si)*16
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="10" height="10" fill="%s"/><text x="%.0f" y="%.1f" class="lg">%s</text>`,
			left+pw+12, ly, col, left+pw+26, ly+9, html.EscapeString(truncate(s.Label, 16)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// FunnelChart renders the funnel as horizontal bars scaled to the first
// stage, each with its count and its conversion from its parent stage.
func FunnelChart(id string, f Funnel) template.HTML {
	const w, rowH, labelW, barW = 680.0, 24.0, 250.0, 300.0
	h := 12 + rowH*float64(len(f.Stages))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" role="img" aria-label="funnel" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`,
		html.EscapeString(id), w, h, w, h)
	top := int64(1)
	if len(f.Stages) > 0 && f.Stages[0].Count > 0 {
		top = f.Stages[0].Count
	}
	for i, s := range f.Stages {
		y := 6 + rowH*float64(i)
		bw := barW * float64(s.Count) / float64(top)
		col := "#0072B2"
		switch s.Name {
		case "abandoned", "detractors":
			col = "#D55E00"
		case "promoters", "called_back", "resolved", "bot_answered":
			col = "#009E73"
		case "passives":
			col = "#999999"
		}
		conv := ""
		if s.Parent != "" {
			conv = fmt.Sprintf(" · %.1f%% of %s", 100*s.Conversion, s.Parent)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" class="lg" text-anchor="end">%s</text>`, labelW-8, y+15, html.EscapeString(s.Label))
		fmt.Fprintf(&b, `<rect class="bar" data-stage="%s" x="%.0f" y="%.1f" width="%.1f" height="%.0f" fill="%s"><title>%s: %d%s</title></rect>`,
			html.EscapeString(s.Name), labelW, y+2, math.Max(bw, 1), rowH-6, col, html.EscapeString(s.Label), s.Count, html.EscapeString(conv))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="ax">%d%s</text>`, labelW+math.Max(bw, 1)+6, y+15, s.Count, html.EscapeString(conv))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
