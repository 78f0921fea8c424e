// gorilla.go - benchmark peer on gorilla/websocket: echo or one-room fan-out.
//
//	gorilla echo|fanout PORT
//
// echo:   every message goes back to its sender, same opcode.
// fanout: every connection is a member of one room; every message received is
//
//	sent to every connection (the sender too), binary stays binary.
//
// Each connection has a reader goroutine and, in fanout mode, a writer
// goroutine fed by a buffered channel. A message is framed once
// (websocket.PreparedMessage) and shared by every member; a member whose
// channel is full is skipped for that message (slow consumer), so no member
// blocks the others. Built with Debian's packages:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o peer_gorilla gorilla.go
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gorilla/websocket"
)

const queueLen = 4096

type member struct {
	conn *websocket.Conn
	out  chan *websocket.PreparedMessage
}

var (
	upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	mu      sync.RWMutex
	members = map[*member]struct{}{}
	dropped uint64
)

func echo(c *websocket.Conn) {
	defer c.Close()
	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		if c.WriteMessage(typ, data) != nil {
			return
		}
	}
}

func writer(m *member) {
	for pm := range m.out {
		if m.conn.WritePreparedMessage(pm) != nil {
			m.conn.Close()
			for range m.out {
			}
			return
		}
	}
}

func fanout(c *websocket.Conn) {
	m := &member{conn: c, out: make(chan *websocket.PreparedMessage, queueLen)}
	mu.Lock()
	members[m] = struct{}{}
	mu.Unlock()
	go writer(m)
	defer func() {
		mu.Lock()
		delete(members, m)
		mu.Unlock()
		close(m.out)
		c.Close()
	}()
	for {
		typ, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(typ, data)
		if err != nil {
			return
		}
		mu.RLock()
		for o := range members {
			select {
			case o.out <- pm:
			default:
				atomic.AddUint64(&dropped, 1)
			}
		}
		mu.RUnlock()
	}
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "echo" && os.Args[1] != "fanout") {
		fmt.Fprintln(os.Stderr, "usage: gorilla echo|fanout PORT")
		os.Exit(2)
	}
	mode, addr := os.Args[1], "127.0.0.1:"+os.Args[2]
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		if mode == "echo" {
			echo(c)
		} else {
			fanout(c)
		}
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		if n := atomic.LoadUint64(&dropped); n > 0 {
			fmt.Fprintf(os.Stderr, "gorilla: dropped %d messages for slow members\n", n)
		}
		os.Exit(0)
	}()
	fmt.Printf("listening %s\n", os.Args[2])
	if err := http.ListenAndServe(addr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gorilla:", err)
		os.Exit(1)
	}
}
