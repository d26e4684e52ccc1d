package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"kefu/conv"
	"kefu/gateway"
	"kefu/wxsim"
)

// cmdChat plays a WeChat customer against a running gateway: it signs and
// (in safe mode) encrypts the push exactly as WeChat would, prints the
// passive reply, and then, when the config runs the built-in simulator,
// prints what arrived through the send APIs for a few seconds.
func cmdChat(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "configs/kefu.yaml", "config file (YAML)")
	chName := fs.String("channel", "", "channel name (wechat_oa or json)")
	user := fs.String("user", "o_chat_demo_user", "customer id (OpenID)")
	wait := fs.Duration("wait", 2*time.Second, "how long to watch for messages sent through the API")
	event := fs.String("event", "", "send an event instead of text (subscribe, unsubscribe, CLICK…)")
	if err := fs.Parse(reorder(args)); err != nil {
		return 2
	}
	text := strings.Join(fs.Args(), " ")
	if *chName == "" || (text == "" && *event == "") {
		fmt.Fprintln(stderr, `usage: kefu chat [-c FILE] --channel NAME [--user ID] "营业时间是几点"`)
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "kefu chat:", err)
		return 1
	}
	var ch *gateway.ChannelConfig
	for i := range cfg.Channels {
		if cfg.Channels[i].Name == *chName {
			ch = &cfg.Channels[i]
		}
	}
	if ch == nil {
		fmt.Fprintf(stderr, "kefu chat: no channel %q in %s\n", *chName, *cfgPath)
		return 1
	}
	base := "http://" + cfg.Listen
	ctx := context.Background()
	since := time.Now()
	switch ch.Type {
	case conv.ChannelWeChatOA:
		mode := wxsim.ModePlain
		if ch.EncodingAESKey != "" {
			mode = wxsim.ModeSafe
		}
		c := &wxsim.OAClient{URL: base + "/wechat/oa/" + ch.Name, Token: ch.Token, AppID: ch.AppID,
			EncodingAESKey: ch.EncodingAESKey, OriginalID: "gh_" + ch.Name, Mode: mode}
		m := &wxsim.Message{FromUserName: *user, MsgType: "text", Content: text}
		if *event != "" {
			m = &wxsim.Message{FromUserName: *user, MsgType: "event", Event: *event}
		}
		if cfg.Simulator.Listen != "" {
			notifySim(cfg.Simulator.Listen, ch.AppID, *user, int(m.Interaction()))
		}
		d, err := c.Send(ctx, m)
		if err != nil {
			fmt.Fprintln(stderr, "kefu chat:", err)
			return 1
		}
		if d.UserSawError() {
			fmt.Fprintf(stdout, "[WeChat] 该公众号暂时无法提供服务，请稍后再试 (%d deliveries, last status %d)\n", len(d.Attempts), d.Attempts[len(d.Attempts)-1].Status)
			return 1
		}
		if d.Reply != nil {
			printReply(stdout, d.Reply.MsgType, d.Reply.Content)
		}
	case conv.ChannelJSON:
		body, _ := json.Marshal(gateway.JSONMessage{MessageID: strconv.FormatInt(time.Now().UnixNano(), 36), UserID: *user, Type: "text", Text: text})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/im/"+ch.Name, bytes.NewReader(body))
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(ch.Token))
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		req.Header.Set("X-Kefu-Timestamp", ts)
		req.Header.Set("X-Kefu-Signature", hex.EncodeToString(mac.Sum(nil)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(stderr, "kefu chat:", err)
			return 1
		}
		defer resp.Body.Close()
		var out gateway.JSONResponse
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil {
			fmt.Fprintf(stderr, "kefu chat: gateway answered %d: %s\n", resp.StatusCode, b)
			return 1
		}
		for _, r := range out.Replies {
			printReply(stdout, string(r.Kind), r.Text)
		}
		return 0
	case conv.ChannelWeComKF:
		if cfg.Simulator.Listen == "" {
			fmt.Fprintln(stderr, "kefu chat: a wecom_kf channel needs the built-in simulator (simulator.listen): messages are pulled from the KF API")
			return 2
		}
		kfid := ""
		for id := range ch.Scenes {
			kfid = id
		}
		if kfid == "" {
			fmt.Fprintln(stderr, "kefu chat: the wecom_kf channel lists no KF account (open_kfid) under scenes")
			return 2
		}
		b, _ := json.Marshal(map[string]string{"open_kfid": kfid, "user": *user, "text": text})
		resp, err := http.Post("http://"+cfg.Simulator.Listen+"/sim/kf/customer", "application/json", bytes.NewReader(b))
		if err != nil {
			fmt.Fprintln(stderr, "kefu chat:", err)
			return 1
		}
		var tok struct {
			Token string `json:"token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		kc := &wxsim.KFClient{URL: base + "/wecom/kf/" + ch.Name, Token: ch.Token, CorpID: ch.AppID, EncodingAESKey: ch.EncodingAESKey}
		if d, err := kc.SendEvent(ctx, tok.Token, kfid); err != nil || !d.Acked {
			fmt.Fprintln(stderr, "kefu chat: KF callback not acknowledged:", err)
			return 1
		}
	default:
		fmt.Fprintf(stderr, "kefu chat: channel type %s is not supported by chat (use wechat_oa, wecom_kf or json)\n", ch.Type)
		return 2
	}
	if cfg.Simulator.Listen != "" && *wait > 0 {
		watchInbox(stdout, cfg.Simulator.Listen, *user, since, *wait)
	}
	return 0
}

func printReply(w io.Writer, kind, text string) {
	if kind == "" || kind == "text" {
		fmt.Fprintln(w, text)
		return
	}
	fmt.Fprintf(w, "[%s] %s\n", kind, text)
}

// reorder lets flags follow the text: kefu chat "问题" --channel demo.
func reorder(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(flags, rest...)
}

func notifySim(addr, appID, user string, kind int) {
	b, _ := json.Marshal(map[string]any{"app_id": appID, "open_id": user, "kind": kind})
	resp, err := http.Post("http://"+addr+"/sim/interact", "application/json", bytes.NewReader(b))
	if err == nil {
		resp.Body.Close()
	}
}

// watchInbox prints messages the simulator delivered to user after since.
func watchInbox(w io.Writer, addr, user string, since time.Time, wait time.Duration) {
	seen := 0
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/sim/inbox?to=" + user)
		if err != nil {
			return
		}
		var items []struct {
			At      time.Time `json:"at"`
			MsgType string    `json:"msgtype"`
			Content string    `json:"content"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&items)
		resp.Body.Close()
		var fresh []int
		for i, it := range items {
			if it.At.After(since) {
				fresh = append(fresh, i)
			}
		}
		for _, i := range fresh[min(seen, len(fresh)):] {
			printReply(w, items[i].MsgType, items[i].Content)
		}
		seen = max(seen, len(fresh))
		time.Sleep(300 * time.Millisecond)
	}
}
