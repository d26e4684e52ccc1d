package bot

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"kefu/bot/embed"
	"kefu/bot/kb"
	"kefu/conv"
)

// MissGroup is a set of similar missed questions (fallbacks, and clarifies
// the customer answered with "none of them").
type MissGroup struct {
	// Questions are the distinct texts, most frequent first.
	Questions []string  `json:"questions"`
	Count     int       `json:"count"`
	Stores    []string  `json:"stores,omitempty"`
	Last      time.Time `json:"last"`
	// Candidates are the best entries seen for the group's first question.
	Candidates []Candidate `json:"candidates,omitempty"`
}

// Misses lists the journal's misses since since, grouped by similarity
// (greedy single pass: a question joins the first group whose lead it
// matches with a normalised lexical score ≥ 0.5), largest group first.
func (b *Bot) Misses(ctx context.Context, since time.Time) ([]MissGroup, error) {
	recs, err := b.journal.Records(ctx)
	if err != nil {
		return nil, err
	}
	r := b.cur.Load()
	type lead struct {
		q embed.Sparse
		d embed.Sparse
	}
	var (
		groups []MissGroup
		leads  []lead
		counts []map[string]int
	)
	for _, rec := range recs {
		miss := rec.Kind == RecFallback || (rec.Kind == RecPick && rec.Entry == "")
		if !miss || rec.At.Before(since) || rec.Question == "" {
			continue
		}
		n := r.norm.Normalize(rec.Question)
		qv, dv := r.lex.Query(n), r.lex.Doc(n)
		gi := -1
		for i, l := range leads {
			if max(qv.Dot(l.d), l.q.Dot(dv)) >= 0.5 {
				gi = i
				break
			}
		}
		if gi < 0 {
			gi = len(groups)
			groups = append(groups, MissGroup{Candidates: rec.Candidates})
			leads = append(leads, lead{qv, dv})
			counts = append(counts, map[string]int{})
		}
		g := &groups[gi]
		g.Count++
		counts[gi][rec.Question]++
		if rec.Store != "" && !slices.Contains(g.Stores, rec.Store) {
			g.Stores = append(g.Stores, rec.Store)
		}
		if rec.At.After(g.Last) {
			g.Last = rec.At
		}
	}
	for i := range groups {
		for q := range counts[i] {
			groups[i].Questions = append(groups[i].Questions, q)
		}
		c := counts[i]
		sort.Slice(groups[i].Questions, func(a, b int) bool {
			qa, qb := groups[i].Questions[a], groups[i].Questions[b]
			return c[qa] > c[qb] || (c[qa] == c[qb] && qa < qb)
		})
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].Count > groups[j].Count })
	return groups, nil
}

// LinkMiss proposes question as a similar question of entry; it takes
// effect when approved (Approve).
func (b *Bot) LinkMiss(ctx context.Context, question, entry, agent string) (Record, error) {
	if strings.TrimSpace(question) == "" {
		return Record{}, fmt.Errorf("bot: link: empty question: %w", errBadInput)
	}
	if _, ok := b.Entry(entry); !ok {
		return Record{}, fmt.Errorf("bot: link: entry %q: %w", entry, errNotFound)
	}
	r := Record{ID: newID(), Kind: RecLink, At: b.now(), Question: strings.TrimSpace(question), Entry: entry, Agent: agent}
	return r, b.journal.Append(ctx, r)
}

// DraftEntry proposes a new entry from an agent's reply to a question; when
// approved it is added to the KB as a draft for an editor to publish.
func (b *Bot) DraftEntry(ctx context.Context, question, answer, agent string) (Record, error) {
	if strings.TrimSpace(question) == "" || strings.TrimSpace(answer) == "" {
		return Record{}, fmt.Errorf("bot: draft: question and answer are required: %w", errBadInput)
	}
	r := Record{ID: newID(), Kind: RecDraft, At: b.now(), Question: strings.TrimSpace(question), Answer: strings.TrimSpace(answer), Agent: agent}
	return r, b.journal.Append(ctx, r)
}

// Suggestions returns link and draft proposals not yet approved or rejected.
func (b *Bot) Suggestions(ctx context.Context) ([]Record, error) {
	recs, err := b.journal.Records(ctx)
	if err != nil {
		return nil, err
	}
	decided := map[string]bool{}
	for _, r := range recs {
		if r.Kind == RecApprove || r.Kind == RecReject {
			decided[r.Ref] = true
		}
	}
	var out []Record
	for _, r := range recs {
		if (r.Kind == RecLink || r.Kind == RecDraft) && !decided[r.ID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Approve applies suggestion id to the knowledge base: a link adds the
// question to the entry's similar questions (version+1); a draft becomes a
// new draft entry. The KB file (cfg.KB) is rewritten and re-published.
func (b *Bot) Approve(ctx context.Context, id, approver string) (kb.Entry, error) {
	sugg, err := b.Suggestions(ctx)
	if err != nil {
		return kb.Entry{}, err
	}
	i := slices.IndexFunc(sugg, func(r Record) bool { return r.ID == id })
	if i < 0 {
		return kb.Entry{}, fmt.Errorf("bot: suggestion %q: %w", id, errNotFound)
	}
	s := sugg[i]
	entries := b.Entries()
	var changed kb.Entry
	switch s.Kind {
	case RecLink:
		j := slices.IndexFunc(entries, func(e kb.Entry) bool { return e.ID == s.Entry })
		if j < 0 {
			return kb.Entry{}, fmt.Errorf("bot: entry %q: %w", s.Entry, errNotFound)
		}
		e := &entries[j]
		if !slices.Contains(e.Questions(), s.Question) {
			e.Similar = append(slices.Clone(e.Similar), s.Question)
			e.Version++
		}
		changed = *e
	case RecDraft:
		changed = kb.Entry{ID: "draft-" + s.ID, Question: s.Question, Answer: s.Answer, Status: kb.Draft, Author: s.Agent}
		changed.Normalize()
		entries = append(entries, changed)
	}
	if err := b.Publish(ctx, entries, nil); err != nil {
		return kb.Entry{}, err
	}
	if b.cfg.KB != "" && b.cfg.KB != "(memory)" {
		if err := kb.WriteFile(b.cfg.KB, entries); err != nil {
			return kb.Entry{}, fmt.Errorf("bot: write kb: %w", err)
		}
	}
	err = b.journal.Append(ctx, Record{ID: newID(), Kind: RecApprove, At: b.now(), Ref: id, Agent: approver, Entry: changed.ID})
	return changed, err
}

// Reject discards suggestion id.
func (b *Bot) Reject(ctx context.Context, id, approver string) error {
	return b.journal.Append(ctx, Record{ID: newID(), Kind: RecReject, At: b.now(), Ref: id, Agent: approver})
}

// Label is one judged decision: the top score and whether the top entry
// was right, and what the judgement says about the question itself, so
// that Rescore can replay it on the current model.
type Label struct {
	Score   float64
	Correct bool
	// Question and Store are the customer's. Right is the entry known to
	// answer the question ("" when unknown); Wrong is an entry known not
	// to ("" when unknown).
	Question, Store string
	Right, Wrong    string
}

// Labels extracts judged decisions from the journal: a customer's pick
// after a clarify says whether the top candidate was right (picking "none"
// says it was wrong); a rating says whether the answered entry helped; an
// approved link of a missed question says the top candidate was wrong
// unless it is the linked entry.
func Labels(recs []Record) []Label {
	byQ := map[string]Record{} // last decision per question
	for _, r := range recs {
		if r.Kind == RecClarify || r.Kind == RecFallback || r.Kind == RecAnswer {
			byQ[r.Question] = r
		}
	}
	var out []Label
	for _, r := range recs {
		d, ok := byQ[r.Question]
		if !ok || len(d.Candidates) == 0 {
			continue
		}
		top := d.Candidates[0]
		l := Label{Score: top.Score, Question: d.Question, Store: d.Store}
		switch r.Kind {
		case RecPick:
			// "None of these" says the top candidate, which was offered,
			// is wrong; a pick names the right entry.
			l.Correct = r.Entry != "" && r.Entry == top.EntryID
			if r.Entry != "" {
				l.Right = r.Entry
			} else {
				l.Wrong = top.EntryID
			}
			out = append(out, l)
		case RecRating:
			if r.Helpful != nil && r.Entry == top.EntryID {
				l.Correct = *r.Helpful
				if l.Correct {
					l.Right = r.Entry
				} else {
					l.Wrong = r.Entry
				}
				out = append(out, l)
			}
		case RecLink:
			l.Correct, l.Right = r.Entry == top.EntryID, r.Entry
			out = append(out, l)
		}
	}
	return out
}

// Rescore replays labels on the current knowledge base and model, so that
// Tune works on today's scores: the journal keeps the scores of the model
// that made each decision, and a retuned model or a changed KB moves them.
// A label keeps its verdict when the question's new top entry is the one
// known right (correct) or known wrong (not correct), with the new top
// score; when the new top entry was never judged the label is dropped.
// Labels without a question are kept as they are.
func (b *Bot) Rescore(ctx context.Context, labels []Label) []Label {
	r := b.cur.Load()
	if r == nil {
		return labels
	}
	out := make([]Label, 0, len(labels))
	for _, l := range labels {
		if l.Question == "" {
			out = append(out, l)
			continue
		}
		cands, _, err := r.search(ctx, l.Question, b.customerFilter(conv.StoreID(l.Store)), 1)
		if err != nil || len(cands) == 0 {
			continue
		}
		top := cands[0]
		switch {
		case l.Right != "":
			l.Correct = top.EntryID == l.Right
		case l.Wrong != "" && top.EntryID == l.Wrong:
			l.Correct = false
		default:
			continue
		}
		l.Score = top.Score
		out = append(out, l)
	}
	return out
}

// Proposal is a suggested threshold setting with its expected effect on
// the labelled decisions.
type Proposal struct {
	Thresholds
	Precision float64 `json:"precision"`
	Coverage  float64 `json:"coverage"`
	Labels    int     `json:"labels"`
}

// Tune proposes thresholds from labels: the lowest answer threshold whose
// answers would have been right at least targetPrecision of the time, and
// a clarify threshold below which fewer than 10% of top candidates were
// right. With fewer than 20 labels it keeps cur.
func Tune(labels []Label, cur Thresholds, targetPrecision float64) Proposal {
	p := Proposal{Thresholds: cur, Labels: len(labels)}
	if len(labels) < 20 {
		return p
	}
	ls := slices.Clone(labels)
	sort.Slice(ls, func(i, j int) bool { return ls[i].Score > ls[j].Score })
	correct := 0
	best := -1
	for i, l := range ls {
		if l.Correct {
			correct++
		}
		if i+1 >= 10 && float64(correct)/float64(i+1) >= targetPrecision && (i+1 == len(ls) || ls[i+1].Score < l.Score) {
			best = i
		}
	}
	if best >= 0 {
		p.Answer = ls[best].Score
		c := 0
		for _, l := range ls[:best+1] {
			if l.Correct {
				c++
			}
		}
		p.Precision, p.Coverage = float64(c)/float64(best+1), float64(best+1)/float64(len(ls))
	}
	// Clarify: the highest score below which under 10% of tops were right.
	for i := len(ls) - 1; i >= 0; i-- {
		right, n := 0, 0
		for _, l := range ls[i:] {
			n++
			if l.Correct {
				right++
			}
		}
		if n >= 10 && float64(right)/float64(n) >= 0.10 {
			if i+1 < len(ls) {
				p.Clarify = min(ls[i].Score, p.Answer)
			}
			break
		}
	}
	return p
}
