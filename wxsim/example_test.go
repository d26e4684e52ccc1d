package wxsim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"kefu/wxsim"
)

// Example wires the two halves together the way a gateway test does: the
// OAClient pushes a user message to the gateway (here a stub that acks and
// answers asynchronously through custom/send), and the API enforces the
// window the push opened.
func Example() {
	api := wxsim.NewAPI(wxsim.APIOptions{OA: []wxsim.OAApp{{AppID: "wxapp", Secret: "sec", OriginalID: "gh_demo"}}})
	base := api.Start()
	defer api.Close()

	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "success") // ack now, reply via custom/send
		tok := getJSON(base + "/cgi-bin/token?grant_type=client_credential&appid=wxapp&secret=sec")
		body := fmt.Sprintf(`{"touser":%q,"msgtype":"text","text":{"content":"您好，请问有什么可以帮您？"}}`, r.URL.Query().Get("openid"))
		resp, _ := http.Post(base+"/cgi-bin/message/custom/send?access_token="+url.QueryEscape(tok), "application/json", strings.NewReader(body))
		resp.Body.Close()
	}))
	defer gateway.Close()

	oa := &wxsim.OAClient{URL: gateway.URL, Token: "tok", AppID: "wxapp", EncodingAESKey: wxsim.GenerateEncodingAESKey(),
		OriginalID: "gh_demo", Mode: wxsim.ModeSafe, API: api, Timeout: 2 * time.Second}
	d, err := oa.SendText(context.Background(), "oCustomer", "营业时间？", 0)
	fmt.Println(err, len(d.Attempts), d.Reply == nil)
	for _, s := range api.Inbox("oCustomer") {
		fmt.Println(s.Channel, s.Content)
	}
	left, _ := api.OAQuota("wxapp", "oCustomer")
	fmt.Println("quota left:", left)
	// Output:
	// <nil> 1 true
	// oa 您好，请问有什么可以帮您？
	// quota left: 4
}

func getJSON(u string) string {
	resp, err := http.Get(u)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	s := string(b)
	i := strings.Index(s, `"access_token":"`)
	if i < 0 {
		return ""
	}
	s = s[i+len(`"access_token":"`):]
	return s[:strings.Index(s, `"`)]
}
