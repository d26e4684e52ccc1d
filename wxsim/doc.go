// Package wxsim is kefu's WeChat simulator. It plays the two sides of the
// WeChat, WeCom and WeChat Customer Service (微信客服) platforms that cannot
// be reached from a developer machine or CI:
//
//   - the platform calling the gateway's callback URLs (OAClient,
//     WeComClient, KFClient): exact query parameters, XML bodies, safe-mode
//     crypto, WeChat's 5 s timeout with identical redeliveries, and strict
//     decoding of passive replies;
//   - the platform's HTTP API the gateway calls (API): access tokens,
//     customer-service windows and quotas, template dedupe, WeCom app and
//     robot limits, and the KF message stream, session state machine and
//     msg_code rules.
//
// Facts and numbers come from docs/WECHAT.md; where the platform's exact
// behaviour is unverified the simulator chooses the stricter reading and
// says so in the doc comment.
//
// The crypto is a from-scratch standard-library implementation, on purpose:
// the gateway uses silenceper's util, and two independent implementations
// expose each other's bugs.
package wxsim
