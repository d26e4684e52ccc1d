package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"kefu/conv"
)

// GenOptions shapes a synthetic day of traffic.
type GenOptions struct {
	// Contacts is the number of contacts started during the day (default 2000).
	Contacts int
	// Stores are the stores traffic goes to (default: the leaves of SampleTree).
	Stores []conv.StoreID
	// AgentsPerStore (default 3) agents "<store>-a<n>" serve each store.
	AgentsPerStore int
	// Channels are channel names (default oa, kf, web).
	Channels []string
}

// SampleTree is the store tree synthetic traffic and the demo dashboard
// use: one brand, two regions, six stores.
func SampleTree() *conv.StoreTree {
	store := func(id, name string) conv.StoreNode { return conv.StoreNode{ID: conv.StoreID(id), Name: name} }
	t, _ := conv.NewStoreTree(conv.StoreNode{ID: "brand", Name: "品牌总部", Children: []conv.StoreNode{
		{ID: "r-east", Name: "华东区", Children: []conv.StoreNode{store("s-01", "上海南京路店"), store("s-02", "杭州西湖店"), store("s-03", "南京新街口店")}},
		{ID: "r-south", Name: "华南区", Children: []conv.StoreNode{store("s-04", "广州天河店"), store("s-05", "深圳福田店"), store("s-06", "厦门中山路店")}},
	}})
	return t
}

// GenerateDay returns one recorded day of synthetic traffic starting at
// day (its date in loc), in time order, fully determined by seed: bot
// answers, handoffs with waits and abandonment, transfers, closes, repeat
// contacts, surveys with not-sent reasons, scores, detractor cases and
// their callbacks. Events after midnight (late surveys, callbacks) belong
// to the day's contacts. Every event carries Conv except a share of the
// bot-side events, as the router emits them today.
func GenerateDay(seed uint64, day time.Time, loc *time.Location, o GenOptions) []conv.Event {
	if o.Contacts <= 0 {
		o.Contacts = 2000
	}
	if len(o.Stores) == 0 {
		o.Stores = SampleTree().Leaves("brand")
	}
	if o.AgentsPerStore <= 0 {
		o.AgentsPerStore = 3
	}
	if len(o.Channels) == 0 {
		o.Channels = []string{"oa", "kf", "web"}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x6b656675))
	y, m, d := day.In(loc).Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
	g := &gen{rng: rng}
	customers := o.Contacts * 4 // some customers come more than once
	for i := 0; i < o.Contacts; i++ {
		// Arrivals peak late morning and evening, 08:00–22:00.
		hour := 8 + 14*betaish(rng)
		start := midnight.Add(time.Duration(hour * float64(time.Hour))).Truncate(time.Millisecond)
		ci := rng.IntN(customers)
		st := o.Stores[ci%len(o.Stores)]
		ch := o.Channels[(ci/len(o.Stores))%len(o.Channels)]
		cu := conv.NewCustomerID(ch, fmt.Sprintf("user%05d", ci))
		g.contact(fmt.Sprintf("cv-%d-%05d", seed, i), cu, st, ch, start, o.AgentsPerStore)
	}
	sort.SliceStable(g.evs, func(i, j int) bool { return g.evs[i].At.Before(g.evs[j].At) })
	return g.evs
}

// betaish draws from a two-peaked distribution on [0, 1).
func betaish(r *rand.Rand) float64 {
	peak := 0.25
	if r.IntN(2) == 1 {
		peak = 0.75
	}
	for {
		// Redraw rather than clamp, so the day does not pile up at opening time.
		if v := peak + r.NormFloat64()*0.15; v >= 0 && v < 1 {
			return v
		}
	}
}

type gen struct {
	rng *rand.Rand
	evs []conv.Event
}

func (g *gen) add(e conv.Event) { g.evs = append(g.evs, e) }

func (g *gen) dur(meanSec float64) time.Duration {
	return time.Duration(g.rng.ExpFloat64() * meanSec * float64(time.Second)).Truncate(time.Millisecond)
}

func (g *gen) contact(id string, cu conv.CustomerID, st conv.StoreID, ch string, start time.Time, agents int) {
	base := conv.Event{Conv: conv.ConvID(id), Customer: cu, Store: st, Channel: ch}
	at := start
	e := func(t conv.EventType, at time.Time, mods ...func(*conv.Event)) conv.Event {
		ev := base
		ev.Type, ev.At = t, at
		for _, m := range mods {
			m(&ev)
		}
		return ev
	}
	// A quarter of contacts' bot-side events come without Conv, as from the router.
	routerStyle := g.rng.IntN(4) == 0
	botConv := func(ev *conv.Event) {
		if routerStyle {
			ev.Conv = ""
		}
	}
	g.add(e(conv.EvMessageReceived, at, botConv, withData("kind", "text", "origin", "0")))
	at = at.Add(300*time.Millisecond + g.dur(0.4))
	handoff := g.rng.Float64() < 0.35
	var end time.Time
	agent := ""
	if !handoff {
		if g.rng.IntN(5) == 0 {
			g.add(e(conv.EvBotClarify, at, botConv))
			at = at.Add(5*time.Second + g.dur(10))
			g.add(e(conv.EvMessageReceived, at, botConv, withData("kind", "text", "origin", "0")))
			at = at.Add(300 * time.Millisecond)
		}
		g.add(e(conv.EvBotAnswered, at, botConv, withData("entry", fmt.Sprintf("faq-%d", g.rng.IntN(40)))))
		end = at
		if g.rng.IntN(2) == 0 { // the other half is ended by the report's idle sweep
			g.add(e(conv.EvClosed, at.Add(DefaultContactIdle), withData("outcome", "bot_idle")))
		}
	} else {
		if g.rng.IntN(3) == 0 {
			g.add(e(conv.EvBotFallback, at, botConv))
			at = at.Add(3*time.Second + g.dur(8))
		}
		g.add(e(conv.EvHandoffRequested, at, botConv))
		at = at.Add(200 * time.Millisecond)
		g.add(e(conv.EvQueued, at))
		wait := g.dur(18)
		patience := g.dur(150)
		if wait > patience {
			reason := "customer_left"
			if g.rng.IntN(4) == 0 {
				reason = "timeout"
			}
			g.add(e(conv.EvAbandoned, at.Add(patience), func(ev *conv.Event) { ev.Reason = reason }))
			end = at.Add(patience)
		} else {
			agent = fmt.Sprintf("%s-a%d", st, 1+g.rng.IntN(agents))
			who := func(a string) func(*conv.Event) { return func(ev *conv.Event) { ev.Agent = a } }
			g.add(e(conv.EvAssigned, at.Add(wait/2), who(agent)))
			at = at.Add(wait)
			g.add(e(conv.EvAccepted, at, who(agent)))
			at = at.Add(3*time.Second + g.dur(12))
			g.add(e(conv.EvAgentReply, at, who(agent)))
			if g.rng.IntN(10) == 0 {
				to := fmt.Sprintf("%s-a%d", st, 1+g.rng.IntN(agents))
				at = at.Add(g.dur(60))
				g.add(e(conv.EvTransferred, at, who(to), withData("from", agent)))
				agent = to
			}
			at = at.Add(30*time.Second + g.dur(240))
			resolved := "true"
			if g.rng.IntN(7) == 0 {
				resolved = "false"
			}
			g.add(e(conv.EvClosed, at, who(agent), withData("resolved", resolved, "disposition", "咨询", "outcome", "closed")))
			end = at
		}
	}
	// Survey after the contact.
	if g.rng.IntN(10) < 8 {
		sAt := end.Add(time.Minute)
		g.add(e(conv.EvSurveyScheduled, sAt, whoIf(agent)))
		if g.rng.IntN(8) == 0 {
			reasons := []string{"frequency_cap", "quiet_hours", "window_closed", "complaint_open"}
			g.add(e(conv.EvSurveyNotSent, sAt.Add(2*time.Minute), whoIf(agent), func(ev *conv.Event) { ev.Reason = reasons[g.rng.IntN(len(reasons))] }))
		} else {
			sent := sAt.Add(2 * time.Minute)
			g.add(e(conv.EvSurveySent, sent, whoIf(agent)))
			if g.rng.IntN(100) < 45 {
				score := g.score(agent != "")
				ans := sent.Add(20*time.Second + g.dur(600))
				g.add(e(conv.EvSurveyAnswered, ans, whoIf(agent), withData("score", fmt.Sprint(score))))
				if score <= DefaultDetractorMax {
					opened := ans.Add(2 * time.Second)
					g.add(e(conv.EvCaseOpened, opened, whoIf(agent), withData("case", "case-"+id)))
					switch g.rng.IntN(10) {
					case 0: // never called back (overdue)
					default:
						called := opened.Add(10*time.Minute + g.dur(8*3600))
						g.add(e(conv.EvCaseContacted, called, withData("case", "case-"+id)))
						if called.Sub(opened) > 20*time.Hour {
							g.add(e(conv.EvCaseEscalated, opened.Add(20*time.Hour), withData("case", "case-"+id)))
						}
						if g.rng.IntN(5) != 0 {
							closed := called.Add(g.dur(3600))
							g.add(e(conv.EvCaseClosed, closed, withData("case", "case-"+id)))
							if g.rng.IntN(5) < 3 { // re-survey after the case is resolved
								g.add(e(conv.EvSurveySent, closed.Add(2*time.Hour), withData("kind", reSurveyKind)))
								if g.rng.IntN(3) != 0 {
									g.add(e(conv.EvSurveyAnswered, closed.Add(2*time.Hour+g.dur(900)),
										withData("kind", reSurveyKind, "score", fmt.Sprint(4+g.rng.IntN(7)))))
								}
							}
						}
					}
				}
			}
		}
	}
}

// score draws an NPS score; handed-off contacts are a little less happy.
func (g *gen) score(handedOff bool) int {
	v := 8.3 + g.rng.NormFloat64()*2.2
	if handedOff {
		v -= 0.8
	}
	return int(math.Round(math.Min(math.Max(v, 0), 10)))
}

func whoIf(a string) func(*conv.Event) {
	return func(ev *conv.Event) {
		if a != "" {
			ev.Agent = a
		}
	}
}

func withData(kv ...string) func(*conv.Event) {
	return func(ev *conv.Event) {
		if ev.Data == nil {
			ev.Data = map[string]string{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			ev.Data[kv[i]] = kv[i+1]
		}
	}
}
