package surveys

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"kefu/conv"
	"kefu/engine"
)

// Response is one survey as reports see it: the latest of its log records.
type Response struct {
	SurveyID string    `json:"survey"`
	Kind     string    `json:"kind"`
	Status   string    `json:"status"` // sent | not_sent | answered | unanswered
	SentAt   time.Time `json:"sent_at"`
	At       time.Time `json:"at"`
	Version  string    `json:"version,omitempty"`
	Customer string    `json:"customer,omitempty"`
	Conv     string    `json:"conv,omitempty"`
	Attribution
	Score   *int   `json:"score,omitempty"`
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// LoadResponses folds the survey log into one Response per survey.
func LoadResponses(ctx context.Context, eng engine.Engine) ([]Response, error) {
	byID := map[string]*Response{}
	var order []string
	after := ""
	for {
		recs, err := eng.ReadLog(ctx, logRecords, after, 1000)
		if err != nil && !errors.Is(err, engine.ErrNotFound) {
			return nil, err
		}
		for _, rec := range recs {
			var r Record
			if json.Unmarshal(rec.Data, &r) != nil {
				continue
			}
			cur := byID[r.SurveyID]
			if cur == nil {
				cur = &Response{SurveyID: r.SurveyID}
				byID[r.SurveyID] = cur
				order = append(order, r.SurveyID)
			}
			cur.Kind, cur.At, cur.Customer, cur.Conv = r.Kind, r.At, r.Customer, r.Conv
			if r.Version != "" {
				cur.Version = r.Version
			}
			if !r.SentAt.IsZero() {
				cur.SentAt = r.SentAt
			}
			if r.Store != "" || r.Channel != "" {
				cur.Attribution = r.Attribution
			}
			switch r.Type {
			case "sent":
				if cur.Status == "" {
					cur.Status = "sent"
				}
			case "not_sent":
				cur.Status, cur.Reason = "not_sent", r.Reason
			case "answered":
				cur.Status, cur.Score, cur.Comment = "answered", r.Score, r.Comment
			case "comment":
				cur.Status, cur.Comment = "answered", r.Comment
				if r.Score != nil {
					cur.Score = r.Score
				}
			case "unanswered":
				if cur.Status != "answered" {
					cur.Status, cur.Reason = "unanswered", r.Reason
				}
			}
		}
		if len(recs) < 1000 {
			break
		}
		after = recs[len(recs)-1].ID
	}
	out := make([]Response, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// responsesTTL bounds how stale the pages' and digests' view of the survey
// log may be; it saves folding the whole log for every request.
const responsesTTL = 15 * time.Second

// responses is LoadResponses shared for responsesTTL between the manager
// pages and the digests of one instance.
func (s *Service) responses(ctx context.Context) ([]Response, error) {
	s.respMu.Lock()
	defer s.respMu.Unlock()
	if s.respAt.IsZero() || time.Since(s.respAt) > responsesTTL {
		resps, err := LoadResponses(ctx, s.eng)
		if err != nil {
			return nil, err
		}
		s.resp, s.respAt = resps, time.Now()
	}
	return s.resp, nil
}

// Report dimensions.
const (
	ByStore   = "store"
	ByAgent   = "agent"
	ByChannel = "channel"
	ByHandoff = "handoff"
	ByDay     = "day"
	ByWeek    = "week"
	ByMonth   = "month"
)

// Query selects and groups responses for an NPS report.
type Query struct {
	// From/To bound the survey send time (To exclusive; zero = open).
	From, To time.Time
	// By is one of store, agent, channel, handoff, day, week, month ("" = one total row).
	By string
	// Store limits the report to a node of the tree and below.
	Store conv.StoreID
	// Visible limits the report to stores the viewer may see (nil = all).
	Visible func(conv.StoreID) bool
	// Location buckets days, weeks and months (nil = UTC).
	Location *time.Location
}

// Row is one group of a report.
type Row struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	// Depth is the node's depth in the store tree (store reports only).
	Depth int   `json:"depth,omitempty"`
	Tally Tally `json:"tally"`
	NPS   NPS   `json:"nps"`
}

// ErrBadDimension rejects an unknown --by.
var ErrBadDimension = fmt.Errorf("%w: --by must be one of store, agent, channel, handoff, day, week, month", conv.ErrBadInput)

// BuildReport groups responses by q.By and computes each group's NPS. A
// store report rolls every response up the tree: a store's row counts
// its own, a region's all its stores', the brand's all. Re-surveys are
// left out (they measure recovery, not the contact).
func BuildReport(resps []Response, tree *conv.StoreTree, q Query) ([]Row, error) {
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	tallies := map[string]*Tally{}
	labels := map[string]string{}
	add := func(key, label string, r Response) {
		t := tallies[key]
		if t == nil {
			t = &Tally{}
			tallies[key], labels[key] = t, label
		}
		t.Sent++
		if r.Status == "answered" && r.Score != nil {
			t.Add(*r.Score)
		}
	}
	for _, r := range resps {
		if r.Kind == KindReSurvey || r.Status == "not_sent" || r.SentAt.IsZero() {
			continue
		}
		if (!q.From.IsZero() && r.SentAt.Before(q.From)) || (!q.To.IsZero() && !r.SentAt.Before(q.To)) {
			continue
		}
		if q.Store != "" && !(tree != nil && tree.Within(r.Store, q.Store)) && r.Store != q.Store {
			continue
		}
		if q.Visible != nil && !q.Visible(r.Store) {
			continue
		}
		lt := r.SentAt.In(loc)
		switch q.By {
		case "":
			add("all", "全部", r)
		case ByStore:
			add(string(r.Store), storeLabel(tree, r.Store), r)
			if tree != nil {
				for _, a := range tree.Ancestors(r.Store) {
					if q.Store != "" && !tree.Within(a, q.Store) {
						continue
					}
					if q.Visible != nil && !q.Visible(a) {
						continue
					}
					add(string(a), storeLabel(tree, a), r)
				}
			}
		case ByAgent:
			if r.Agent == "" {
				add("(bot)", "机器人", r)
			} else {
				add(r.Agent, r.Agent, r)
			}
		case ByChannel:
			add(r.Channel, r.Channel+" ("+string(r.ChannelType)+")", r)
		case ByHandoff:
			if r.HandedOff {
				add("handed_off", "转人工", r)
			} else {
				add("bot_only", "仅机器人", r)
			}
		case ByDay:
			k := lt.Format("2006-01-02")
			add(k, k, r)
		case ByWeek:
			y, w := lt.ISOWeek()
			k := fmt.Sprintf("%d-W%02d", y, w)
			add(k, k, r)
		case ByMonth:
			k := lt.Format("2006-01")
			add(k, k, r)
		default:
			return nil, ErrBadDimension
		}
	}
	rows := make([]Row, 0, len(tallies))
	for k, t := range tallies {
		row := Row{Key: k, Label: labels[k], Tally: *t, NPS: t.Compute()}
		if q.By == ByStore && tree != nil {
			row.Depth = len(tree.Ancestors(conv.StoreID(k)))
		}
		rows = append(rows, row)
	}
	sort.Slice(rows, func(i, j int) bool {
		if q.By == ByStore && tree != nil && rows[i].Depth != rows[j].Depth {
			return rows[i].Depth < rows[j].Depth
		}
		return rows[i].Key < rows[j].Key
	})
	return rows, nil
}

func storeLabel(tree *conv.StoreTree, id conv.StoreID) string {
	if tree != nil {
		if n, ok := tree.Node(id); ok && n.Name != "" {
			return n.Name
		}
	}
	return string(id)
}

// WriteCSV writes rows as CSV with a header; percentages have one decimal.
func WriteCSV(w io.Writer, by string, rows []Row) error {
	cw := csv.NewWriter(w)
	if by == "" {
		by = "group"
	}
	_ = cw.Write([]string{by, "label", "nps", "n", "pct_promoters", "pct_passives", "pct_detractors", "promoters", "passives", "detractors", "sent", "response_rate"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, r := range rows {
		nps := ""
		if r.NPS.Defined {
			nps = f(r.NPS.Score)
		}
		_ = cw.Write([]string{r.Key, r.Label, nps, strconv.Itoa(r.NPS.N), f(r.NPS.Promoters), f(r.NPS.Passives), f(r.NPS.Detractors),
			strconv.Itoa(r.Tally.Promoters), strconv.Itoa(r.Tally.Passives), strconv.Itoa(r.Tally.Detractors), strconv.Itoa(r.Tally.Sent), f(r.NPS.ResponseRate)})
	}
	cw.Flush()
	return cw.Error()
}
