package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"kefu/conv"
)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{conv.ErrBadInput}, args...)...)
}

// meResp is what the page needs after login.
type meResp struct {
	conv.Principal
	CSRF         string   `json:"csrf"`
	Dispositions []string `json:"dispositions"`
	Supervisor   bool     `json:"supervisor"`
	Agent        bool     `json:"agent"`
}

func (c *Console) me(p conv.Principal, csrf string) meResp {
	isAgent := false
	for _, a := range c.cfg.Agents() {
		isAgent = isAgent || a.Name == p.User
	}
	return meResp{Principal: p, CSRF: csrf, Dispositions: conv.WorkOrderTypes,
		Supervisor: p.Role == conv.RoleSupervisor || p.Role == conv.RoleAdmin, Agent: isAgent}
}

func (c *Console) apiMe(r *http.Request, p conv.Principal) (any, error) {
	s, _, _ := c.session(r)
	return c.me(p, s.CSRF), nil
}

type queueResp struct {
	Queue   []conv.Conversation `json:"queue"`
	Mine    []conv.Conversation `json:"mine"`
	Ongoing []conv.Conversation `json:"ongoing"`
}

func (c *Console) apiQueue(r *http.Request, p conv.Principal) (any, error) {
	ctx := r.Context()
	q, err := c.d.Desk.Queue(ctx, p)
	if err != nil {
		return nil, err
	}
	mine, err := c.d.Desk.Mine(ctx, p)
	if err != nil {
		return nil, err
	}
	var ongoing []conv.Conversation
	if p.Role != conv.RoleAgent {
		if ongoing, err = c.d.Desk.Ongoing(ctx, p); err != nil {
			return nil, err
		}
	}
	return queueResp{Queue: nonNil(q), Mine: nonNil(mine), Ongoing: nonNil(ongoing)}, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// convID reads and checks the {id} path segment.
func convID(r *http.Request) (conv.ConvID, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, " /{}") {
		return "", badInput("bad conversation id %q", id)
	}
	return conv.ConvID(id), nil
}

type chatResp struct {
	Conv        conv.Conversation   `json:"conv"`
	Transcript  []conv.Turn         `json:"transcript"`
	Quota       conv.QuotaInfo      `json:"quota"`
	History     []conv.Conversation `json:"history"`
	Profile     *Profile            `json:"profile"` // null: no profile source ("—")
	Suggestions []Suggestion        `json:"suggestions"`
}

func (c *Console) apiChat(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	cv, turns, err := c.d.Desk.Chat(ctx, p, id)
	if err != nil {
		return nil, err
	}
	resp := chatResp{Conv: cv, Transcript: nonNil(turns), Suggestions: []Suggestion{}}
	if resp.Quota, err = c.d.Desk.Quota(ctx, p, id); err != nil {
		return nil, err
	}
	h, err := c.d.Desk.History(ctx, cv.Customer)
	if err != nil {
		return nil, err
	}
	resp.History = nonNil(h)
	if c.d.Profiles != nil {
		if pr, err := c.d.Profiles.Profile(ctx, cv.Customer); err == nil {
			pr.Surveys, pr.OpenCases = nonNil(pr.Surveys), nonNil(pr.OpenCases)
			resp.Profile = &pr
		} else {
			c.log.Warn("profile unavailable", "conv_id", id, "err", err)
		}
	}
	// Suggestions for the customer's last message.
	if c.d.KB != nil {
		for i := len(turns) - 1; i >= 0; i-- {
			if turns[i].Role == conv.TurnCustomer && strings.TrimSpace(turns[i].Text) != "" {
				resp.Suggestions = nonNil(c.d.KB.Search(ctx, turns[i].Text, cv.Store, 3))
				break
			}
		}
	}
	return resp, nil
}

func (c *Console) apiAccept(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	if err := decodeOptional(r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, c.d.Desk.Accept(r.Context(), p, id)
}

type replyReq struct {
	ClientID string `json:"client_id"`
	Text     string `json:"text"`
}

func (c *Console) apiReply(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	var req replyReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Text) == "" {
		return nil, badInput("text is required")
	}
	if req.ClientID == "" {
		return nil, badInput("client_id is required (it makes a retried send go out once)")
	}
	if err := c.d.Desk.Reply(r.Context(), p, id, req.ClientID, req.Text); err != nil {
		return nil, err
	}
	return c.d.Desk.Quota(r.Context(), p, id)
}

type noteReq struct {
	Text string `json:"text"`
}

func (c *Console) apiNote(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	var req noteReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Text) == "" {
		return nil, badInput("text is required")
	}
	return nil, c.d.Desk.Note(r.Context(), p, id, req.Text)
}

type transferReq struct {
	To     string `json:"to"`
	Reason string `json:"reason"`
}

func (c *Console) apiTransfer(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	var req transferReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.To) == "" {
		return nil, badInput("to is required (an agent, or queue / queue:<skill>)")
	}
	if utf8.RuneCountInString(req.Reason) > 200 {
		return nil, badInput("reason is longer than 200 characters")
	}
	return nil, c.d.Desk.Transfer(r.Context(), p, id, req.To, req.Reason)
}

type assignReq struct {
	Agent string `json:"agent"`
}

func (c *Console) apiAssign(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	var req assignReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if strings.TrimSpace(req.Agent) == "" {
		return nil, badInput("agent is required")
	}
	return nil, c.d.Desk.Assign(r.Context(), p, id, req.Agent)
}

func (c *Console) apiTakeOver(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	if err := decodeOptional(r, &struct{}{}); err != nil {
		return nil, err
	}
	return nil, c.d.Desk.TakeOver(r.Context(), p, id)
}

type closeReq struct {
	Disposition string `json:"disposition"`
	Resolved    *bool  `json:"resolved"`
}

func (c *Console) apiClose(r *http.Request, p conv.Principal) (any, error) {
	id, err := convID(r)
	if err != nil {
		return nil, err
	}
	var req closeReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if !conv.ValidWorkOrderType(req.Disposition) {
		return nil, badInput("disposition must be one of %s", strings.Join(conv.WorkOrderTypes, ", "))
	}
	if req.Resolved == nil {
		return nil, badInput("resolved (true or false) is required")
	}
	return nil, c.d.Desk.Close(r.Context(), p, id, req.Disposition, *req.Resolved)
}

func (c *Console) apiKB(r *http.Request, p conv.Principal) (any, error) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" {
		return nil, badInput("q is required")
	}
	if utf8.RuneCountInString(q) > 200 {
		return nil, badInput("q is longer than 200 characters")
	}
	store := conv.StoreID(r.URL.Query().Get("store"))
	if store != "" && !visible(c, p, store) {
		return nil, fmt.Errorf("%w: store %s", conv.ErrForbidden, store)
	}
	if c.d.KB == nil {
		return []Suggestion{}, nil
	}
	return nonNil(c.d.KB.Search(r.Context(), q, store, 8)), nil
}

func visible(c *Console, p conv.Principal, store conv.StoreID) bool {
	if p.Role == conv.RoleAdmin || (len(p.Stores) == 0 && p.Role != conv.RoleStoreManager) {
		return true
	}
	return p.CanSee(c.d.Stores, store)
}

func (c *Console) apiAgents(r *http.Request, p conv.Principal) (any, error) {
	return c.d.Desk.Agents(r.Context(), p)
}

type statusReq struct {
	Status conv.AgentStatus `json:"status"`
}

func (c *Console) apiStatus(r *http.Request, p conv.Principal) (any, error) {
	var req statusReq
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	switch req.Status {
	case conv.AgentOnline, conv.AgentAway, conv.AgentOffline:
	default:
		return nil, badInput("status must be online, away or offline")
	}
	return nil, c.d.Desk.SetStatus(r.Context(), p, req.Status)
}

func (c *Console) apiTickets(r *http.Request, p conv.Principal) (any, error) {
	return c.d.Desk.Tickets(r.Context(), p)
}

// decodeOptional accepts an empty body or a JSON object of v's shape.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decode(r, v)
	if errors.Is(err, conv.ErrBadInput) && strings.Contains(err.Error(), "EOF") {
		return nil
	}
	return err
}
