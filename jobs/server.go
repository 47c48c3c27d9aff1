package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// ServerConfig tunes the asynq worker.
type ServerConfig struct {
	Concurrency int
	// PollInterval is how often an idle worker looks for new tasks. asynq's default (1 s)
	// alone adds ~600 ms median latency; 20 ms costs little.
	PollInterval time.Duration
	// ScheduledInterval is how often scheduled and retrying tasks that have come due move
	// to their queue (asynq's default, 5 s, would make Retry-After and short backoffs late).
	ScheduledInterval time.Duration
	ShutdownTimeout   time.Duration
}

// NewServer builds the asynq server and the mux with every task handler registered.
func NewServer(redis asynq.RedisConnOpt, cfg ServerConfig, e *Engine) (*asynq.Server, *asynq.ServeMux) {
	srv := asynq.NewServer(redis, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   Queues,
		TaskCheckInterval:        cfg.PollInterval,
		DelayedTaskCheckInterval: cfg.ScheduledInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           retryDelay,
		IsFailure:                isFailure,
		Logger:                   slogAdapter{e.Log.With("component", "asynq")},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !isFailure(err) {
				return
			}
			e.Log.Error("task failed", "task_type", t.Type(), "err", err)
		}),
	})
	mux := asynq.NewServeMux()
	Register(mux, e)
	return srv, mux
}

// Register is the one list of task handlers.
func Register(mux *asynq.ServeMux, e *Engine) {
	mux.Use(recoverPanics)
	mux.HandleFunc(TypeRoute, e.HandleRoute)
	mux.HandleFunc(TypeDeliver, e.HandleDeliver)
}

// recoverPanics turns a handler panic into an error, so a poison task is retried and
// then archived while the worker keeps serving others.
func recoverPanics(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in %s: %v", t.Type(), r)
			}
		}()
		return next.ProcessTask(ctx, t)
	})
}

// retryDelay is asynq's delay before running a failed task again. Destination failures
// never reach it (the engine schedules those itself); it covers a database that was
// briefly unavailable, and busy connections, which come back soon.
func retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, errConnectionBusy) {
		return 200*time.Millisecond + time.Duration(rand.IntN(300))*time.Millisecond
	}
	var p *postponed
	if errors.As(err, &p) {
		// asynq rounds schedules down to the second: add one so the task is not early.
		return p.wait + time.Second
	}
	d := time.Second << min(n, 6)
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

func isFailure(err error) bool {
	var p *postponed
	return !errors.Is(err, errConnectionBusy) && !errors.As(err, &p)
}

// QueueDepth registers one gauge per queue reading its pending, scheduled and retry sizes.
func QueueDepth(reg prometheus.Registerer, insp *asynq.Inspector) {
	for q := range Queues {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fanout_queue_depth", Help: "Tasks waiting in a queue (pending, scheduled and retry).",
			ConstLabels: prometheus.Labels{"queue": q},
		}, func() float64 {
			info, err := insp.GetQueueInfo(q)
			if err != nil {
				return 0
			}
			return float64(info.Pending + info.Scheduled + info.Retry)
		}))
	}
}

// slogAdapter lets asynq log through slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a slogAdapter) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
