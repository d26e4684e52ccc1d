package wxsim

import (
	"net/http"
	"time"
)

// Token endpoints (WECHAT.md §2.5, §3.2):
//   - /cgi-bin/token rotates on every call; the previous token stays valid
//     for at most 5 more minutes.
//   - /cgi-bin/stable_token is isolated from /cgi-bin/token: normal mode
//     returns the current token (with its remaining lifetime) and renews it
//     only in its last 5 minutes; force_refresh is limited to 20/day, ≥30 s
//     apart, and kills the previous token at once.
//   - /cgi-bin/gettoken (WeCom) keys tokens by secret, so an app and the KF
//     secret of one corp get different tokens; it returns the same token
//     while valid (the older doc wording; the current page is silent).

// tokenGrace is how long a rotated-out /cgi-bin/token token stays valid.
const tokenGrace = 5 * time.Minute

func init() {
	register("/cgi-bin/token", route{method: http.MethodGet, h: (*API).hToken})
	register("/cgi-bin/stable_token", route{method: http.MethodPost, h: (*API).hStableToken})
	register("/cgi-bin/gettoken", route{method: http.MethodGet, h: (*API).hGetToken})
}

func (a *API) oaCredentials(grant, appID, secret string) (*oaState, *apiError) {
	switch {
	case grant != "client_credential":
		return nil, errc(40002, "invalid grant_type")
	case appID == "":
		return nil, errc(41002, "appid missing")
	case secret == "":
		return nil, errc(41004, "appsecret missing")
	}
	st := a.oa[appID]
	if st == nil {
		return nil, errc(40013, "invalid appid")
	}
	if secret != st.app.Secret {
		return nil, errc(40125, "invalid appsecret")
	}
	return st, nil
}

func (a *API) hToken(c *reqCtx) (map[string]any, *apiError) {
	st, e := a.oaCredentials(c.query.Get("grant_type"), c.query.Get("appid"), c.query.Get("secret"))
	if e != nil {
		return nil, e
	}
	if old := st.current; old != nil {
		cut := c.now.Add(tokenGrace)
		if old.invalidAt.IsZero() || cut.Before(old.invalidAt) {
			old.invalidAt = cut
		}
	}
	st.current = a.newTokenLocked(tokOA, st.app.AppID, 0, c.now)
	return map[string]any{"access_token": st.current.value, "expires_in": int64(a.opts.TokenTTL / time.Second)}, nil
}

func (a *API) hStableToken(c *reqCtx) (map[string]any, *apiError) {
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if e := decodeJSON(c.body, &req); e != nil {
		return nil, e
	}
	st, e := a.oaCredentials(req.GrantType, req.AppID, req.Secret)
	if e != nil {
		return nil, e
	}
	cur := st.stable
	switch {
	case req.ForceRefresh:
		day := cstDay(c.now)
		var today []time.Time
		for _, t := range st.forceRefresh {
			if cstDay(t) == day {
				today = append(today, t)
			}
		}
		if len(today) >= 20 {
			return nil, errc(45009, "reach max api daily quota limit: force_refresh allows 20 calls per day")
		}
		if n := len(today); n > 0 && c.now.Sub(today[n-1]) < 30*time.Second {
			return nil, errc(45011, "api minute-quota reach limit: force_refresh needs 30 s between calls")
		}
		st.forceRefresh = append(today, c.now)
		if cur != nil {
			cur.invalidAt = c.now
		}
		cur = nil
	case cur != nil && cur.validAt(c.now) && cur.remaining(c.now) > int64(tokenGrace/time.Second):
		// Same token, remaining lifetime.
	default:
		// Missing, expired or in its last 5 minutes: the platform renews early;
		// the old token lives out its own lifetime.
		cur = nil
	}
	if cur == nil {
		cur = a.newTokenLocked(tokOAStable, st.app.AppID, 0, c.now)
		st.stable = cur
	}
	return map[string]any{"access_token": cur.value, "expires_in": cur.remaining(c.now)}, nil
}

func (a *API) hGetToken(c *reqCtx) (map[string]any, *apiError) {
	corpID, secret := c.query.Get("corpid"), c.query.Get("corpsecret")
	switch {
	case corpID == "":
		return nil, errc(41002, "corpid missing")
	case secret == "":
		return nil, errc(41004, "corpsecret missing")
	}
	known := false
	for _, w := range a.wecom {
		known = known || w.app.CorpID == corpID
	}
	kc := a.kfCorps[corpID]
	if !known && kc == nil {
		return nil, errc(40013, "invalid corpid")
	}
	var slot **accessToken
	var kind tokenKind
	var agentID int64
	if w := a.wecom[corpID+"/"+secret]; w != nil {
		slot, kind, agentID = &w.token, tokWeCom, w.app.AgentID
	} else if kc != nil && kc.secret == secret {
		slot, kind = &kc.token, tokKF
	} else {
		return nil, errc(40001, "invalid credential: corpsecret does not match any app of this corp")
	}
	if *slot == nil || !(*slot).validAt(c.now) {
		*slot = a.newTokenLocked(kind, corpID, agentID, c.now)
	}
	return map[string]any{"access_token": (*slot).value, "expires_in": (*slot).remaining(c.now)}, nil
}

// cst is China Standard Time; WeChat's daily quotas reset at its midnight.
var cst = time.FixedZone("CST", 8*3600)

func cstDay(t time.Time) string { return t.In(cst).Format("2006-01-02") }
