package gateway

import (
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"kefu/conv"
)

// Headers of the signed JSON channel contract (docs/json-channel.md).
const (
	jsonHeaderTimestamp = "X-Kefu-Timestamp"
	jsonHeaderSignature = "X-Kefu-Signature"
	maxJSONText         = 4096
)

// JSONMessage is the body a web widget or another IM posts to /im/{name}.
type JSONMessage struct {
	MessageID string            `json:"message_id"`
	UserID    string            `json:"user_id"`
	Type      string            `json:"type"` // text | image | event
	Text      string            `json:"text,omitempty"`
	URL       string            `json:"url,omitempty"`
	Event     string            `json:"event,omitempty"`
	Store     string            `json:"store,omitempty"`
	CreatedAt int64             `json:"created_at,omitempty"` // unix seconds
	Meta      map[string]string `json:"meta,omitempty"`
}

// JSONResponse is the synchronous answer of the JSON channel.
type JSONResponse struct {
	Accepted  bool         `json:"accepted"`
	Duplicate bool         `json:"duplicate,omitempty"`
	Replies   []conv.Reply `json:"replies"`
	// Async is true when the answer was not ready within the budget; it
	// will be POSTed to the channel's callback_url.
	Async bool `json:"async,omitempty"`
}

// parseJSONMessage validates a JSON channel body.
func parseJSONMessage(b []byte) (JSONMessage, error) {
	var m JSONMessage
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, errStatus(400, "malformed JSON: "+err.Error(), err)
	}
	if dec.More() {
		return m, errStatus(400, "malformed JSON: trailing data", nil)
	}
	switch {
	case m.MessageID == "" || len(m.MessageID) > 128:
		return m, errStatus(400, "message_id is required (1-128 chars)", nil)
	case m.UserID == "" || len(m.UserID) > 128:
		return m, errStatus(400, "user_id is required (1-128 chars)", nil)
	case m.Type != "text" && m.Type != "image" && m.Type != "event":
		return m, errStatus(400, `type must be "text", "image" or "event"`, nil)
	case m.Type == "text" && strings.TrimSpace(m.Text) == "":
		return m, errStatus(400, "text is required for type text", nil)
	case !utf8.ValidString(m.Text) || utf8.RuneCountInString(m.Text) > maxJSONText:
		return m, errStatus(400, "text must be valid UTF-8 of at most 4096 characters", nil)
	}
	return m, nil
}

// serveJSON handles the HMAC-signed JSON webhook.
func (g *Gateway) serveJSON(ctx *fasthttp.RequestCtx, ch *channel) (string, error) {
	if !ctx.IsPost() {
		return "", errStatus(405, "method not allowed", nil)
	}
	ts := string(ctx.Request.Header.Peek(jsonHeaderTimestamp))
	sig := string(ctx.Request.Header.Peek(jsonHeaderSignature))
	body := ctx.PostBody()
	want := jsonSign(ch.cfg.Token, ts, body)
	got, err := hex.DecodeString(sig)
	wantB, _ := hex.DecodeString(want)
	if err != nil || !hmac.Equal(got, wantB) {
		return "", errStatus(401, "signature mismatch", errBadSignature)
	}
	if err := g.checkTimestamp(ts); err != nil {
		return "", err
	}
	jm, err := parseJSONMessage(body)
	if err != nil {
		return "", err
	}
	now := g.now()
	created := now
	if jm.CreatedAt > 0 {
		created = time.Unix(jm.CreatedAt, 0)
	}
	msg := conv.Message{
		ID:           "im:" + ch.cfg.Name + ":" + jm.UserID + ":" + jm.MessageID,
		Channel:      ch.cfg.Name,
		ChannelType:  conv.ChannelJSON,
		ExternalUser: jm.UserID,
		Customer:     conv.NewCustomerID(ch.cfg.Name, jm.UserID),
		Store:        ch.cfg.Store,
		RawType:      jm.Type,
		PlatformID:   jm.MessageID,
		Text:         jm.Text,
		URL:          jm.URL,
		Event:        jm.Event,
		Extra:        jm.Meta,
		CreatedAt:    created,
		ReceivedAt:   now,
	}
	if jm.Store != "" {
		msg.Store = conv.StoreID(jm.Store)
	}
	switch jm.Type {
	case "text":
		msg.Kind = conv.MsgText
	case "image":
		msg.Kind = conv.MsgImage
	default:
		msg.Kind = conv.MsgEvent
	}
	res, err := g.accept(context.Background(), msg, g.cfg.DedupeTTL, true)
	if err != nil {
		return "", err
	}
	out := JSONResponse{Accepted: true, Duplicate: res.dup, Replies: []conv.Reply{}}
	if res.passive != nil {
		out.Replies = append(out.Replies, *res.passive)
	} else {
		out.Async = true
	}
	b, _ := json.Marshal(out)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	if res.dup {
		return "duplicate", nil
	}
	return "accepted", nil
}
