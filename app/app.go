package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/sync/errgroup"

	"kefu/bot"
	"kefu/console"
	"kefu/conv"
	"kefu/engine"
	"kefu/gateway"
	"kefu/handoff"
	"kefu/report"
	"kefu/surveys"
	"kefu/wxsim"
)

// redisPoolSize sizes the connection pool (per node on a cluster) for many
// concurrent callbacks each making several sequential calls; go-redis's
// default (10 per CPU) queues them on two cores.
const redisPoolSize = 128

// shutdownTimeout bounds draining on SIGTERM.
const shutdownTimeout = 20 * time.Second

// App is a built kefu instance.
type App struct {
	Cfg      Config
	Log      *slog.Logger
	Engine   engine.Engine
	Gateway  *gateway.Gateway
	Bot      *bot.Bot
	Router   *Router
	Sim      *wxsim.API // non-nil when simulator.listen is set
	Desk     *handoff.Service
	Surveys  *surveys.Service
	Reporter *report.Reporter
	Console  *console.Console

	registry *prometheus.Registry
	events   *eventWriter
	botState *writeBehind
	simSrv   *http.Server
	ln       net.Listener
}

// NewLogger builds the slog logger the config asks for.
func NewLogger(cfg LogConfig, w *os.File) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenEngine chooses the engine: no redis.addr → embedded under data_dir;
// otherwise Redis (a cluster client when several addresses are given or
// redis.cluster is set). It is the one place that decides, and it logs
// the choice.
func OpenEngine(cfg Config, log *slog.Logger) (engine.Engine, error) {
	if cfg.Redis.Addr == "" {
		dir := filepath.Join(cfg.DataDir, "engine")
		e, err := engine.OpenEmbedded(dir, cfg.Embedded.Options())
		if err != nil {
			return nil, fmt.Errorf("open embedded engine in %s: %w", dir, err)
		}
		log.Info("engine selected", "engine", "embedded", "dir", dir)
		return e, nil
	}
	addrs := strings.Split(cfg.Redis.Addr, ",")
	var client redis.UniversalClient
	switch {
	case cfg.Redis.SentinelMaster != "":
		client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.Redis.SentinelMaster, SentinelAddrs: addrs, SentinelPassword: cfg.Redis.SentinelPassword,
			Password: cfg.Redis.Password, DB: cfg.Redis.DB, PoolSize: redisPoolSize,
		})
	case cfg.Redis.Cluster || len(addrs) > 1:
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: cfg.Redis.Password, PoolSize: redisPoolSize})
	default:
		client = redis.NewClient(&redis.Options{Addr: addrs[0], Password: cfg.Redis.Password, DB: cfg.Redis.DB, PoolSize: redisPoolSize})
	}
	log.Info("engine selected", "engine", "redis", "addrs", addrs, "cluster", cfg.Redis.Cluster || len(addrs) > 1 && cfg.Redis.SentinelMaster == "", "sentinel_master", cfg.Redis.SentinelMaster)
	return engine.NewRedis(client, cfg.Redis.Prefix), nil
}

// Build wires an App from cfg. The caller owns Close.
func Build(cfg Config, log *slog.Logger) (*App, error) { return build(cfg, log, nil) }

// build is Build on eng when it is not nil (tests watch the engine's
// traffic) and on OpenEngine's otherwise; the App owns eng either way.
func build(cfg Config, log *slog.Logger, eng engine.Engine) (*App, error) {
	if err := cfg.Validate(); err != nil {
		if eng != nil {
			eng.Close()
		}
		return nil, err
	}
	a := &App{Cfg: cfg, Log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Simulator.Listen != "" {
		if err := a.startSimulator(); err != nil {
			if eng != nil {
				eng.Close()
			}
			return nil, err
		}
	}
	if eng == nil {
		var err error
		if eng, err = OpenEngine(cfg, log); err != nil {
			a.Close()
			return nil, err
		}
	}
	a.Engine = eng
	if emb, ok := eng.(*engine.Embedded); ok {
		a.registry.MustRegister(embeddedCollector{emb})
	}
	a.events = newEventWriter(eng, log)

	botCfg := cfg.Bot
	if botCfg.DataDir == "" && cfg.Redis.Addr == "" {
		botCfg.DataDir = filepath.Join(cfg.DataDir, "bot")
	}
	botState := newWriteBehind(bot.EngineState(eng), log)
	a.botState = botState
	b, err := bot.New(botCfg, botState, log)
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("bot: %w", err)
	}
	a.Bot = b
	a.Router = &Router{bot: b, messages: cfg.Messages, log: log.With("component", "router"), events: a.events}
	gw, err := gateway.New(cfg.GatewayConfig(), eng, a.Router, gateway.Options{Logger: log, Registry: a.registry})
	if err != nil {
		a.Close()
		return nil, err
	}
	gw.AdminToken = cfg.Admin.Token
	gw.AdminRoutes = kbAdminRoutes(b, botCfg.Thresholds)
	// WeChat requires deleting a user's data when they unsubscribe.
	a.Router.OnUnsubscribe = append(a.Router.OnUnsubscribe,
		func(ctx context.Context, c conv.CustomerID) error {
			return botState.Save(ctx, c, bot.Memory{}, time.Second)
		},
		gw.ForgetCustomer)
	gw.Sender.OnResult = func(job conv.Outbound, err error) {
		ev := conv.Event{Type: conv.EvOutboundSent, Channel: job.Channel, Data: map[string]string{"id": job.ID, "source": job.Source, "kind": string(job.Kind)}}
		if err != nil {
			ev.Type, ev.Reason = conv.EvOutboundFailed, err.Error()
		}
		a.events.emit(ev)
	}
	a.Gateway = gw
	tree, err := conv.NewStoreTree(cfg.Stores)
	if err != nil {
		a.Close()
		return nil, err
	}
	if err := a.buildDomains(tree); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) startSimulator() error {
	var opts wxsim.APIOptions
	for _, ch := range a.Cfg.Channels {
		switch ch.Type {
		case conv.ChannelWeChatOA:
			opts.OA = append(opts.OA, wxsim.OAApp{AppID: ch.AppID, Secret: ch.AppSecret})
		case conv.ChannelWeComApp:
			opts.WeCom = append(opts.WeCom, wxsim.WeComApp{CorpID: ch.AppID, Secret: ch.AppSecret, AgentID: int64(ch.AgentID)})
		case conv.ChannelWeComKF:
			kf := wxsim.KFCorp{CorpID: ch.AppID, Secret: ch.AppSecret}
			for id := range ch.Scenes {
				kf.Accounts = append(kf.Accounts, id)
			}
			opts.KF = append(opts.KF, kf)
		}
	}
	var robots func(n conv.StoreNode)
	robots = func(n conv.StoreNode) {
		for _, m := range n.Managers {
			if m.RobotKey != "" {
				opts.Robots = append(opts.Robots, m.RobotKey)
			}
		}
		for _, c := range n.Children {
			robots(c)
		}
	}
	robots(a.Cfg.Stores)
	sim := wxsim.NewAPI(opts)
	ln, err := net.Listen("tcp", a.Cfg.Simulator.Listen)
	if err != nil {
		return fmt.Errorf("simulator.listen: %w", err)
	}
	a.Sim = sim
	a.simSrv = &http.Server{Handler: simControl(sim), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.simSrv.Serve(ln) }()
	a.Log.Warn("WeChat simulator running: development only, WeChat API calls go to it", "listen", ln.Addr().String())
	return nil
}

// Handler returns the full HTTP handler: gateway routes plus /metrics.
func (a *App) Handler() fasthttp.RequestHandler {
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	gw := a.Gateway.HTTPHandler()
	return func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/metrics" {
			metrics(ctx)
			return
		}
		gw(ctx)
	}
}

// Server returns the fasthttp server with the timeouts WECHAT.md §7.1 asks for.
func (a *App) Server() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            a.Handler(),
		Name:               "kefu",
		ReadTimeout:        5 * time.Second,
		WriteTimeout:       5 * time.Second,
		IdleTimeout:        60 * time.Second,
		MaxRequestBodySize: a.Cfg.Gateway.MaxBodyBytes,
		NoDefaultDate:      true,
		Logger:             slogPrinter{a.Log},
		ErrorHandler:       gateway.ErrorHandler,
	}
}

// Run serves until ctx ends, then drains: stop accepting, finish accepted
// work, stop services, close the engine.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp4", a.Cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on an existing listener (tests use a free port).
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	a.ln = ln
	srv := a.Server()
	svcCtx, stopServices := context.WithCancel(context.Background())
	defer stopServices()
	services, _ := errgroup.WithContext(svcCtx)
	// Recovery first: messages accepted before a crash are answered.
	services.Go(func() error { return a.Gateway.RunRecovery(svcCtx) })
	services.Go(func() error { return a.Gateway.Sender.Run(svcCtx) })
	services.Go(func() error { return a.Gateway.RunKFPuller(svcCtx) })
	services.Go(func() error { return a.events.run(svcCtx) })
	services.Go(func() error { return a.botState.run(svcCtx) })
	services.Go(func() error { return trimJournal(svcCtx, a.Engine, a.Log) })
	// Editing the KB file re-publishes it (only changed entries re-index).
	services.Go(func() error { return bot.KBWatcher{Bot: a.Bot}.Run(svcCtx) })
	services.Go(func() error { return a.Desk.Run(svcCtx) })
	services.Go(func() error { return a.Surveys.Run(svcCtx) })
	services.Go(func() error { return a.Reporter.Run(svcCtx) })
	services.Go(func() error { return report.NewRetention(a.Reporter).Run(svcCtx) })
	if a.Cfg.Console.Listen != "" {
		services.Go(func() error { return a.Console.Run(svcCtx) })
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.Log.Info("kefu listening", "addr", ln.Addr().String(), "engine", a.Engine.Name(), "channels", len(a.Cfg.Channels))
	select {
	case err := <-errc:
		stopServices()
		return err
	case <-ctx.Done():
	}
	a.Log.Info("shutting down: draining")
	dctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = a.Gateway.Drain(dctx)
	_ = srv.ShutdownWithContext(dctx)
	// Give the sender a moment to flush what accepted work produced.
	flush, cancelFlush := context.WithTimeout(context.Background(), 2*time.Second)
	for a.Gateway.Sender.SendDue(flush) > 0 {
	}
	cancelFlush()
	stopServices()
	err := services.Wait()
	a.Log.Info("stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close releases the engine and the simulator.
func (a *App) Close() {
	if a.simSrv != nil {
		_ = a.simSrv.Close()
	}
	if a.Engine != nil {
		_ = a.Engine.Close()
	}
}

type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Printf(format string, args ...any) {
	p.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}
