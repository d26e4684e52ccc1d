package surveys

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"kefu/conv"
	"kefu/engine"
)

type digestJob struct {
	Store conv.StoreID `json:"store"`
	Date  string       `json:"date"` // the local day the digest is sent
}

// digestTime is when store's digest goes out on the local day of t.
func (s *Service) digestTime(store conv.StoreID, day time.Time) time.Time {
	at := parseHHMM(s.cfg.Digest.At)
	before := time.Duration(0)
	if n, ok := s.tree.Node(store); ok && n.Opening != "" {
		at, before = parseHHMM(n.Opening), s.cfg.Digest.Before
	}
	d := day.In(s.loc)
	return time.Date(d.Year(), d.Month(), d.Day(), at/60, at%60, 0, 0, s.loc).Add(-before)
}

// planDigests arms each store's next digest timer. Timer IDs carry the
// date, and the send is idempotent, so planning on every instance is safe.
func (s *Service) planDigests(ctx context.Context) error {
	if s.cfg.Stores.ID == "" {
		return nil
	}
	now := s.now()
	for _, store := range s.tree.Leaves(s.cfg.Stores.ID) {
		t := s.digestTime(store, now)
		if !t.After(now) {
			t = s.digestTime(store, now.In(s.loc).AddDate(0, 0, 1))
		}
		date := t.In(s.loc).Format("2006-01-02")
		id := "digest:" + string(store) + ":" + date
		s.digestMu.Lock()
		done := s.digestDone[id]
		s.digestDone[id] = true
		s.digestMu.Unlock()
		if done {
			continue
		}
		if err := s.enqueue(ctx, id, t, digestJob{Store: store, Date: date}); err != nil {
			return err
		}
	}
	return nil
}

// Digest is a store's daily summary for its managers.
type Digest struct {
	Store     conv.StoreID `json:"store"`
	Day       string       `json:"day"` // the day summarised (yesterday)
	NPS       NPS          `json:"nps"`
	Comments  []string     `json:"comments"`
	OpenCases []Case       `json:"open_cases"`
}

// BuildDigest summarises store's responses of the local day before date
// and its cases still open.
func (s *Service) BuildDigest(ctx context.Context, store conv.StoreID, date time.Time) (Digest, error) {
	d := date.In(s.loc)
	end := time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, s.loc)
	start := end.AddDate(0, 0, -1)
	resps, err := s.responses(ctx)
	if err != nil {
		return Digest{}, err
	}
	rows, err := BuildReport(resps, s.tree, Query{From: start, To: end, Store: store, Location: s.loc})
	if err != nil {
		return Digest{}, err
	}
	dg := Digest{Store: store, Day: start.Format("2006-01-02")}
	if len(rows) > 0 {
		dg.NPS = rows[0].NPS
	}
	for _, r := range resps {
		if r.Store == store && r.Comment != "" && r.Kind == KindNPS && !r.SentAt.Before(start) && r.SentAt.Before(end) && r.Score != nil {
			dg.Comments = append(dg.Comments, fmt.Sprintf("%d分：%s", *r.Score, clip(r.Comment, 80)))
		}
	}
	dg.OpenCases, err = s.Cases(ctx, CaseFilter{States: []string{CaseOpen, CaseContacted}, Visible: func(id conv.StoreID) bool { return id == store }})
	return dg, err
}

func (s *Service) digestMarkdown(dg Digest) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s 每日客户反馈（%s）**\n", s.storeName(dg.Store), dg.Day)
	if dg.NPS.Defined {
		fmt.Fprintf(&b, "> NPS：**%+.1f**（n=%d，推荐 %.1f%% / 中立 %.1f%% / 贬损 %.1f%%，回复率 %.1f%%）\n", dg.NPS.Score, dg.NPS.N, dg.NPS.Promoters, dg.NPS.Passives, dg.NPS.Detractors, dg.NPS.ResponseRate)
	} else {
		fmt.Fprintf(&b, "> 昨日无评价（发出 %d 份）\n", dg.NPS.Sent)
	}
	for i, c := range dg.Comments {
		if i == 8 {
			fmt.Fprintf(&b, "> …共 %d 条留言\n", len(dg.Comments))
			break
		}
		fmt.Fprintf(&b, "> %s\n", c)
	}
	now := s.now()
	fmt.Fprintf(&b, "未结差评：**%d** 件\n", len(dg.OpenCases))
	for i, c := range dg.OpenCases {
		if i == 8 {
			break
		}
		flag := ""
		if c.Overdue(now) {
			flag = "（已超时）"
		}
		fmt.Fprintf(&b, "> %d分 %s 截止 %s%s\n", c.Score, clip(c.Comment, 40), c.Deadline.In(s.loc).Format("01-02 15:04"), flag)
	}
	return b.String()
}

// digestDue sends one store's digest to its managers (WeCom app and robot).
func (s *Service) digestDue(ctx context.Context, j engine.Job) error {
	var dj digestJob
	if err := json.Unmarshal(j.Data, &dj); err != nil {
		return nil
	}
	day, err := time.ParseInLocation("2006-01-02", dj.Date, s.loc)
	if err != nil {
		return nil
	}
	dg, err := s.BuildDigest(ctx, dj.Store, day)
	if err != nil {
		return err
	}
	text := s.digestMarkdown(dg)
	managers := s.managersFor(dj.Store)
	base := "digest:" + string(dj.Store) + ":" + dj.Date
	for _, m := range managers {
		if m.WeComUserID != "" && s.cfg.Alerts.WeComAppChannel != "" {
			if err := s.sender.Send(ctx, conv.Outbound{ID: base + ":w:" + m.WeComUserID, Kind: conv.OutWeComApp, Channel: s.cfg.Alerts.WeComAppChannel,
				To: m.WeComUserID, Reply: conv.Reply{Kind: conv.ReplyMarkdown, Text: text}, Source: "digest"}); err != nil {
				return err
			}
		}
		if m.RobotKey != "" && s.cfg.Alerts.Robot {
			if err := s.sender.Send(ctx, conv.Outbound{ID: base + ":r:" + shortHash(m.RobotKey), Kind: conv.OutRobot, To: m.RobotKey,
				Reply: conv.Reply{Kind: conv.ReplyMarkdown, Text: text}, Source: "digest"}); err != nil {
				return err
			}
		}
	}
	_ = s.eng.Set(ctx, keyDigest+string(dj.Store)+":"+dj.Date, []byte("1"), 8*24*time.Hour)
	return nil
}
