//! The task that owns a client's connection: it connects, drives the
//! [`pigeon_proto::flow::Connection`] (the same state machine the broker
//! uses), turns requests into packets and packets into events, and
//! reconnects with backoff, resuming the session's unacknowledged messages.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use pigeon_proto::codec::{
    Connect, Publish, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions, Unsubscribe,
};
use pigeon_proto::error::Misuse;
use pigeon_proto::flow::{self, Connection, Event as FlowEvent, SessionState};
use pigeon_proto::properties::Properties;
use pigeon_proto::string::MqttStr;
use pigeon_proto::{decode, Error, Packet, PacketId, QoS, ReasonCode};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::rustls::ClientConfig;

use crate::asynchronous::{ClientError, Event, Message, MessageId};
use crate::options::Options;
use crate::store::{Op, Saved, SessionStore, Stage};
use crate::transport::{self, Stream};

type Done<T> = Option<oneshot::Sender<Result<T, ClientError>>>;

/// Requests taken at once before writing.
const COMMAND_BATCH: usize = 256;

/// A request from a handle.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        mid: MessageId,
        message: Box<Publish>,
        done: Done<ReasonCode>,
        /// Its record in the session store.
        seq: Option<u64>,
    },
    Subscribe {
        mid: MessageId,
        filters: Vec<SubscribeFilter>,
        properties: Box<Properties>,
        done: Done<Vec<ReasonCode>>,
    },
    Unsubscribe {
        mid: MessageId,
        filters: Vec<MqttStr>,
        done: Done<Vec<ReasonCode>>,
    },
    Ack {
        /// To answer the broker (without a session store).
        packet_id: Option<PacketId>,
        /// To take the message out of the store's inbox.
        delivery: Option<u64>,
    },
    Disconnect {
        reason_code: ReasonCode,
        done: Option<oneshot::Sender<()>>,
    },
}

/// A publish waiting for the window or for a connection.
#[derive(Debug)]
struct Queued {
    mid: MessageId,
    message: Box<Publish>,
    done: Done<ReasonCode>,
    seq: Option<u64>,
}

/// A QoS 1/2 publish in flight.
#[derive(Debug)]
struct InFlight {
    mid: MessageId,
    done: Done<ReasonCode>,
    /// Its record in the session store, and the message (to rewrite it).
    stored: Option<(u64, Box<Publish>)>,
}

/// A SUBSCRIBE or UNSUBSCRIBE sent and not yet answered.
#[derive(Debug)]
enum Control {
    Subscribe {
        mid: MessageId,
        filters: Vec<SubscribeFilter>,
        done: Done<Vec<ReasonCode>>,
    },
    Unsubscribe {
        mid: MessageId,
        filters: Vec<MqttStr>,
        done: Done<Vec<ReasonCode>>,
    },
}

/// How one connection ended.
enum Ended {
    /// Lost or refused: reconnect if allowed.
    Lost,
    /// The application asked to disconnect, or dropped every handle.
    Stop(Option<oneshot::Sender<()>>),
}

struct Driver {
    options: Options,
    /// The TLS configuration, for the TLS transports.
    tls: Option<Arc<ClientConfig>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
    /// The session between connections.
    session: SessionState,
    /// Publishes not yet handed to the flow, oldest first.
    queue: VecDeque<Queued>,
    /// QoS 1/2 publishes in flight, by packet id.
    in_flight: HashMap<u16, InFlight>,
    /// The session store, if the session is kept on disk.
    store: Option<Arc<SessionStore>>,
    /// Changes for the store, committed together before the next write to
    /// the broker.
    ops: Vec<Op>,
    /// Messages entering the inbox: handed to the application once the
    /// commit that stores them is done.
    arrived: Vec<Message>,
    /// QoS 0 publishes handed to the flow, completed once written.
    written: Vec<(MessageId, Done<ReasonCode>)>,
    /// SUBSCRIBE / UNSUBSCRIBE waiting for a connection.
    pending_control: VecDeque<Control>,
    /// SUBSCRIBE / UNSUBSCRIBE sent, by packet id.
    control: HashMap<u16, Control>,
    /// Every filter subscribed, for resubscribing to a broker that kept no
    /// session.
    subscriptions: BTreeMap<MqttStr, SubscriptionOptions>,
    /// Connections made so far (the first one uses the configured Clean
    /// Start; later ones resume).
    connections: u64,
}

/// Runs the client until it is told to stop.
pub(crate) async fn run(
    options: Options,
    tls: Option<Arc<ClientConfig>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<Event>,
    store: Option<Arc<SessionStore>>,
    saved: Option<Saved>,
) {
    let mut driver = Driver {
        options,
        tls,
        commands,
        events,
        session: SessionState::new(),
        queue: VecDeque::new(),
        in_flight: HashMap::new(),
        store,
        ops: Vec::new(),
        arrived: Vec::new(),
        written: Vec::new(),
        pending_control: VecDeque::new(),
        control: HashMap::new(),
        subscriptions: BTreeMap::new(),
        connections: 0,
    };
    if let Some(mut saved) = saved {
        let inbox = std::mem::take(&mut saved.inbox);
        driver.restore(saved);
        // What the application had not acknowledged comes first, again.
        for (delivery, publish) in inbox {
            let message = Message {
                publish,
                delivery: Some(delivery),
                redelivered: true,
            };
            driver.handed_over(&message);
            driver.emit(Event::Message(Box::new(message))).await;
        }
    }
    let mut attempt = 0u32;
    let stopped = loop {
        let connected_before = driver.connections;
        let ended = driver.connection().await;
        if driver.connections > connected_before {
            attempt = 0;
        }
        let reconnect = driver.options.reconnect;
        let done = match (ended, reconnect) {
            (Ended::Stop(done), _) => break done,
            (Ended::Lost, None) => break None,
            (Ended::Lost, Some(backoff)) => {
                let wait = backoff.delay(attempt, random_unit());
                attempt = attempt.saturating_add(1);
                driver.wait(wait).await
            }
        };
        if let Some(done) = done {
            break done;
        }
    };
    // Acknowledgements taken with the last requests, and those committed
    // without an fsync: a client that stopped cleanly redelivers nothing.
    driver.commit();
    if let Some(store) = &driver.store {
        if let Err(e) = store.sync() {
            tracing::error!("{e}");
        }
    }
    driver.fail_all();
    // The store's file is closed before `disconnect` returns.
    drop(driver);
    if let Some(done) = stopped {
        let _ = done.send(());
    }
}

impl Driver {
    /// Picks up where a previous process left the session: messages in
    /// flight are resumed by the flow (resent with DUP on connection),
    /// queued ones wait their turn, QoS 2 identifiers still mark
    /// duplicates.
    fn restore(&mut self, saved: Saved) {
        let outbound = crate::store::outbound(&saved.outgoing);
        self.session = SessionState::restore(outbound, saved.inbound_qos2);
        for (seq, stage, message) in saved.outgoing {
            let stored = Some((seq, Box::new(message.clone())));
            match stage {
                Stage::Queued => self.queue.push_back(Queued {
                    mid: 0,
                    message: Box::new(message),
                    done: None,
                    seq: Some(seq),
                }),
                Stage::Sent(id) | Stage::Released(id) => {
                    let entry = InFlight {
                        mid: 0,
                        done: None,
                        stored,
                    };
                    self.in_flight.insert(id.get(), entry);
                }
            }
        }
        for (filter, options) in saved.subscriptions {
            if let Ok(filter) = MqttStr::try_from(filter.as_str()) {
                self.subscriptions.insert(filter, options);
            }
        }
        if !self.in_flight.is_empty() || !self.queue.is_empty() {
            tracing::info!(
                in_flight = self.in_flight.len(),
                queued = self.queue.len(),
                "session store: resuming unacknowledged messages"
            );
        }
    }

    /// Queues a change for the session store, if there is one.
    fn record(&mut self, op: Op) {
        if self.store.is_some() {
            self.ops.push(op);
        }
    }

    /// Commits the queued changes in one transaction. `false` if that
    /// failed: then nothing that depended on them may be sent.
    fn commit(&mut self) -> bool {
        let Some(store) = &self.store else {
            return true;
        };
        match store.apply(&self.ops) {
            Ok(()) => {
                self.ops.clear();
                true
            }
            Err(e) => {
                tracing::error!("{e}; closing the connection, the broker will resend");
                // Outgoing changes are rebuilt from memory on the next
                // connection; incoming messages come again from the broker.
                self.ops.clear();
                self.arrived.clear();
                false
            }
        }
    }

    /// With automatic acknowledgements, a message handed to the
    /// application leaves the inbox.
    fn handed_over(&mut self, message: &Message) {
        if let (Some(delivery), false) = (message.delivery, self.options.manual_acks) {
            self.record(Op::Delivered(delivery));
        }
    }

    /// Waits `wait` before reconnecting, taking requests meanwhile. `Some`
    /// if the application asked to stop.
    async fn wait(&mut self, wait: std::time::Duration) -> Option<Option<oneshot::Sender<()>>> {
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return None,
                command = self.commands.recv() => match command {
                    None => return Some(None),
                    Some(Command::Disconnect { done, .. }) => return Some(done),
                    Some(command) => {
                        if let Err(e) = self.take(command, None) {
                            tracing::debug!("{e}");
                        }
                        self.commit();
                    }
                },
            }
        }
    }

    fn connect_packet(&self) -> Connect {
        let o = &self.options;
        let client_id = MqttStr::try_from(o.client_id.as_str()).unwrap_or_default();
        let mut c = Connect::new(o.protocol, client_id);
        // A persistent session is resumed on every reconnection; a clean
        // one starts afresh each time, as the application asked.
        c.clean_start = o.clean_start;
        c.keep_alive = u16::try_from(o.keep_alive.as_secs()).unwrap_or(u16::MAX);
        c.will = o.will.clone();
        c.username = o
            .username
            .as_deref()
            .and_then(|u| MqttStr::try_from(u).ok());
        c.password = o.password.clone();
        if o.protocol.is_v5() {
            c.properties = o.connect_properties.clone();
            c.properties.session_expiry_interval = o.session_expiry;
        }
        c
    }

    /// One connection, from TCP connect (and TLS and WebSocket handshakes)
    /// to its end.
    async fn connection(&mut self) -> Ended {
        let timeout = self.options.connect_timeout;
        let opening = transport::connect(&self.options, self.tls.as_ref());
        let stream = match tokio::time::timeout(timeout, opening).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return self.failed(e).await,
            Err(_) => {
                let address = self.options.address();
                let why = format!("no answer within {timeout:?}");
                return self.failed(ClientError::Unreachable { address, why }).await;
            }
        };
        let config = flow::Config {
            max_inflight: self.options.max_inflight,
            connect_timeout: Some(timeout),
            ..flow::Config::default()
        };
        let session = std::mem::take(&mut self.session);
        let conn = Connection::client(Instant::now(), config, self.connect_packet(), session);
        let mut live = Live {
            conn,
            stream,
            read: BytesMut::with_capacity(4096),
            write: BytesMut::new(),
            lost_reason: None,
            log: self.options.log_packets.then(Vec::new),
        };
        let ended = self.drive(&mut live).await;
        self.session = live.conn.into_session();
        if let Ended::Lost = ended {
            let reconnecting = self.options.reconnect.is_some();
            let reason_code = live.lost_reason;
            self.emit(Event::Disconnected {
                reason_code,
                reconnecting,
            })
            .await;
        }
        ended
    }

    async fn failed(&mut self, error: ClientError) -> Ended {
        self.emit(Event::ConnectFailed(error)).await;
        Ended::Lost
    }

    async fn drive(&mut self, live: &mut Live) -> Ended {
        loop {
            self.fill(&mut live.conn);
            // Everything the packets below depend on is on disk first.
            if !self.commit() {
                return Ended::Lost;
            }
            for message in std::mem::take(&mut self.arrived) {
                self.handed_over(&message);
                self.emit(Event::Message(Box::new(message))).await;
            }
            let flushed = live.flush().await;
            self.emit_logs(live).await;
            if let Err(e) = flushed {
                tracing::debug!("write failed: {e}");
                return Ended::Lost;
            }
            for (mid, done) in self.written.drain(..) {
                complete(done, Ok(ReasonCode::SUCCESS));
                let _ = self.events.try_send(Event::Published {
                    mid,
                    reason_code: ReasonCode::SUCCESS,
                });
            }
            if live.conn.is_closed() {
                return Ended::Lost;
            }
            let deadline = live.conn.poll_timeout();
            let sleep = deadline.map_or_else(
                || tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
                tokio::time::Instant::from_std,
            );
            tokio::select! {
                read = live.stream.read_buf(&mut live.read) => match read {
                    Ok(0) | Err(_) => return Ended::Lost,
                    Ok(_) => {
                        live.on_bytes();
                        self.emit_logs(live).await;
                    }
                },
                command = self.commands.recv() => match command {
                    None => return self.stop(live, ReasonCode::SUCCESS, None).await,
                    Some(Command::Disconnect { reason_code, done }) => {
                        return self.stop(live, reason_code, done).await;
                    }
                    Some(command) => {
                        if let Err(e) = self.take(command, Some(&mut live.conn)) {
                            tracing::debug!("{e}");
                        }
                        // Take what else is waiting, so a burst of requests
                        // goes out in one write.
                        for _ in 0..COMMAND_BATCH {
                            match self.commands.try_recv() {
                                Ok(Command::Disconnect { reason_code, done }) => {
                                    self.fill(&mut live.conn);
                                    return self.stop(live, reason_code, done).await;
                                }
                                Ok(command) => {
                                    if let Err(e) = self.take(command, Some(&mut live.conn)) {
                                        tracing::debug!("{e}");
                                    }
                                }
                                Err(_) => break,
                            }
                        }
                    }
                },
                () = tokio::time::sleep_until(sleep) => {
                    if let Err(e) = live.conn.handle_timeout(Instant::now()) {
                        tracing::debug!("{e}");
                    }
                }
            }
            while let Some(event) = live.conn.poll_event() {
                if let Some(ended) = self.on_event(live, event).await {
                    return ended;
                }
            }
        }
    }

    /// Accepts a request: queued for the flow (or answered at once when it
    /// cannot be taken).
    fn take(&mut self, command: Command, conn: Option<&mut Connection>) -> Result<(), ClientError> {
        match command {
            Command::Publish {
                mid,
                message,
                done,
                seq,
            } => {
                if self.queue.len() >= self.options.max_queued {
                    if let Some(seq) = seq {
                        self.record(Op::Done(seq));
                    }
                    complete(done, Err(ClientError::QueueFull));
                    return Err(ClientError::QueueFull);
                }
                self.queue.push_back(Queued {
                    mid,
                    message,
                    done,
                    seq,
                });
            }
            Command::Subscribe {
                mid,
                filters,
                properties,
                done,
            } => {
                let control = Control::Subscribe { mid, filters, done };
                self.send_control(control, *properties, conn);
            }
            Command::Unsubscribe { mid, filters, done } => {
                let control = Control::Unsubscribe { mid, filters, done };
                self.send_control(control, Properties::default(), conn);
            }
            Command::Ack {
                packet_id,
                delivery,
            } => match (delivery, packet_id, conn) {
                // The broker was answered when the message was stored.
                (Some(delivery), _, _) => self.record(Op::Delivered(delivery)),
                (None, Some(packet_id), Some(conn)) => {
                    // A stale id (the connection it came on is gone) is
                    // harmless: the broker resends that message.
                    let _ = conn.ack(packet_id, ReasonCode::SUCCESS);
                }
                (None, _, _) => {}
            },
            Command::Disconnect { done, .. } => {
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
        Ok(())
    }

    /// Sends a SUBSCRIBE / UNSUBSCRIBE now if connected, else when connected.
    fn send_control(
        &mut self,
        control: Control,
        properties: Properties,
        conn: Option<&mut Connection>,
    ) {
        let Some(conn) = conn.filter(|c| c.is_open()) else {
            self.pending_control.push_back(control);
            return;
        };
        let Ok(packet_id) = conn.allocate_packet_id() else {
            self.pending_control.push_back(control);
            return;
        };
        let packet = match &control {
            Control::Subscribe { filters, .. } => Packet::Subscribe(Subscribe {
                packet_id,
                properties: properties.into(),
                filters: filters.clone(),
            }),
            Control::Unsubscribe { filters, .. } => Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: properties.into(),
                filters: filters.clone(),
            }),
        };
        match conn.send(packet) {
            Ok(()) => {
                self.control.insert(packet_id.get(), control);
            }
            Err(e) => fail_control(control, ClientError::InvalidTopic(e.to_string())),
        }
    }

    /// Moves queued publishes and requests into the flow while it is open
    /// and its window has room.
    fn fill(&mut self, conn: &mut Connection) {
        if !conn.is_open() {
            return;
        }
        while let Some(control) = self.pending_control.pop_front() {
            self.send_control(control, Properties::default(), Some(conn));
        }
        while let Some(front) = self.queue.front() {
            if front.message.qos != QoS::AtMostOnce && conn.send_quota() == 0 {
                break;
            }
            let Some(Queued {
                mid,
                message,
                done,
                seq,
            }) = self.queue.pop_front()
            else {
                break;
            };
            let copy = seq.map(|seq| (seq, message.clone()));
            match conn.publish(*message) {
                Ok(Some(packet_id)) => {
                    // On disk with its identifier before the PUBLISH is
                    // written: a restart resends it as the same message.
                    if let Some((seq, message)) = &copy {
                        let stage = Stage::Sent(packet_id);
                        self.record(Op::Put(*seq, stage, message.clone()));
                    }
                    let entry = InFlight {
                        mid,
                        done,
                        stored: copy,
                    };
                    self.in_flight.insert(packet_id.get(), entry);
                }
                Ok(None) => self.written.push((mid, done)),
                Err(Error::Misuse(Misuse::ExceedsPeerMaximum { size, max })) => {
                    complete(done, Err(ClientError::TooLarge { size, max }));
                }
                Err(e) => {
                    tracing::debug!("not sent: {e}");
                    complete(done, Err(ClientError::InvalidTopic(e.to_string())));
                }
            }
        }
    }

    async fn on_event(&mut self, live: &mut Live, event: FlowEvent) -> Option<Ended> {
        match event {
            FlowEvent::Connected(connack) => {
                self.connections += 1;
                let session_present = connack.session_present;
                if !session_present {
                    self.after_session_lost();
                }
                self.emit(Event::Connected {
                    session_present,
                    connack: Box::new(connack),
                })
                .await;
            }
            FlowEvent::Refused(connack) => {
                self.emit(Event::ConnectFailed(ClientError::Refused(
                    connack.reason_code,
                )))
                .await;
                return Some(Ended::Lost);
            }
            FlowEvent::SessionLost(unsent) => {
                // The broker has no session: what was not yet received by it
                // is sent again as new messages, in order, first.
                for message in unsent.into_iter().rev() {
                    let entry = message
                        .packet_id
                        .and_then(|id| self.in_flight.remove(&id.get()));
                    let (mid, done, seq) = match entry {
                        Some(e) => (e.mid, e.done, e.stored.map(|(seq, _)| seq)),
                        None => (0, None, None),
                    };
                    self.queue.push_front(Queued {
                        mid,
                        message: Box::new(message),
                        done,
                        seq,
                    });
                }
            }
            FlowEvent::Message(publish) => {
                let qos2 = publish.qos == QoS::ExactlyOnce;
                match (publish.packet_id, &self.store) {
                    (Some(id), Some(store)) => {
                        // Into the inbox (with the QoS 2 identifier) in the
                        // commit before the PUBACK / PUBREC; handed to the
                        // application after that commit.
                        let delivery = store.next_delivery();
                        if qos2 {
                            self.record(Op::Inbound(id.get(), true));
                        }
                        self.record(Op::Inbox(delivery, Box::new(publish.clone())));
                        let _ = live.conn.ack(id, ReasonCode::SUCCESS);
                        self.arrived.push(Message {
                            publish,
                            delivery: Some(delivery),
                            redelivered: false,
                        });
                        return None;
                    }
                    (Some(id), None) if !self.options.manual_acks => {
                        let _ = live.conn.ack(id, ReasonCode::SUCCESS);
                    }
                    _ => {}
                }
                self.emit(Event::Message(Box::new(Message::new(publish))))
                    .await;
            }
            FlowEvent::Received { packet_id } => {
                // Past PUBREC: after a restart only PUBREL is resent.
                if let Some(InFlight {
                    stored: Some((seq, message)),
                    ..
                }) = self.in_flight.get(&packet_id.get())
                {
                    let op = Op::Put(*seq, Stage::Released(packet_id), message.clone());
                    self.record(op);
                }
            }
            FlowEvent::Released { packet_id } => {
                // Forgotten before PUBCOMP goes out.
                self.record(Op::Inbound(packet_id.get(), false));
            }
            FlowEvent::Delivered {
                packet_id,
                reason_code,
            } => {
                if let Some(entry) = self.in_flight.remove(&packet_id.get()) {
                    if let Some((seq, _)) = entry.stored {
                        self.record(Op::Done(seq));
                    }
                    complete(entry.done, Ok(reason_code));
                    if entry.mid != 0 {
                        let mid = entry.mid;
                        self.emit(Event::Published { mid, reason_code }).await;
                    }
                }
            }
            FlowEvent::SubAck(ack) => self.on_suback(ack, true).await,
            FlowEvent::UnsubAck(ack) => self.on_suback(ack, false).await,
            FlowEvent::Disconnected(disconnect) => {
                live.lost_reason = Some(disconnect.reason_code);
            }
            _ => {}
        }
        None
    }

    /// After a connection that found no session: QoS 2 messages the old
    /// session had past PUBREC were received by the broker (complete);
    /// subscriptions are made again if asked.
    fn after_session_lost(&mut self) {
        let remaining: Vec<u16> = self.in_flight.keys().copied().collect();
        for id in remaining {
            if let Some(entry) = self.in_flight.remove(&id) {
                if let Some((seq, _)) = entry.stored {
                    self.record(Op::Done(seq));
                }
                complete(entry.done, Ok(ReasonCode::SUCCESS));
                let _ = self.events.try_send(Event::Published {
                    mid: entry.mid,
                    reason_code: ReasonCode::SUCCESS,
                });
            }
        }
        if self.options.resubscribe && !self.subscriptions.is_empty() {
            let filters = self
                .subscriptions
                .iter()
                .map(|(filter, options)| SubscribeFilter {
                    filter: filter.clone(),
                    options: *options,
                })
                .collect();
            self.pending_control.push_front(Control::Subscribe {
                mid: 0,
                filters,
                done: None,
            });
        }
    }

    async fn on_suback(&mut self, ack: SubAck, subscribe: bool) {
        let Some(control) = self.control.remove(&ack.packet_id.get()) else {
            return;
        };
        let codes = ack.reason_codes;
        match control {
            Control::Subscribe { mid, filters, done } if subscribe => {
                for (f, code) in filters.iter().zip(&codes) {
                    if !code.is_error() {
                        self.subscriptions.insert(f.filter.clone(), f.options);
                        let op = Op::Subscription(f.filter.as_str().to_owned(), Some(f.options));
                        self.record(op);
                    }
                }
                complete(done, Ok(codes.clone()));
                if mid != 0 {
                    self.emit(Event::Subscribed {
                        mid,
                        reason_codes: codes,
                    })
                    .await;
                }
            }
            Control::Unsubscribe { mid, filters, done } if !subscribe => {
                for f in &filters {
                    self.subscriptions.remove(f);
                    self.record(Op::Subscription(f.as_str().to_owned(), None));
                }
                complete(done, Ok(codes.clone()));
                self.emit(Event::Unsubscribed {
                    mid,
                    reason_codes: codes,
                })
                .await;
            }
            other => fail_control(other, ClientError::Disconnected),
        }
    }

    /// Ends the connection with DISCONNECT, on the application's request.
    async fn stop(
        &mut self,
        live: &mut Live,
        reason_code: ReasonCode,
        done: Option<oneshot::Sender<()>>,
    ) -> Ended {
        // What the requests taken with it changed is stored first.
        self.commit();
        let ended = live.stop(reason_code, done).await;
        self.emit_logs(live).await;
        ended
    }

    /// Hands the packet log lines gathered so far to the application.
    async fn emit_logs(&self, live: &mut Live) {
        let Some(lines) = live.log.as_mut() else {
            return;
        };
        for line in std::mem::take(lines) {
            self.emit(Event::Log(line)).await;
        }
    }

    async fn emit(&self, event: Event) {
        // An application that dropped its events does not stop the client.
        let _ = self.events.send(event).await;
    }

    /// The client stops: every request still waiting fails.
    fn fail_all(&mut self) {
        for q in self.queue.drain(..) {
            complete(q.done, Err(ClientError::Disconnected));
        }
        for (_, entry) in self.in_flight.drain() {
            complete(entry.done, Err(ClientError::Disconnected));
        }
        for control in self
            .pending_control
            .drain(..)
            .chain(self.control.drain().map(|(_, c)| c))
        {
            fail_control(control, ClientError::Disconnected);
        }
    }
}

/// An open connection.
struct Live {
    conn: Connection,
    stream: Stream,
    read: BytesMut,
    write: BytesMut,
    /// The broker's DISCONNECT reason, if it sent one.
    lost_reason: Option<ReasonCode>,
    /// With `Options::log_packets`: lines not yet handed over.
    log: Option<Vec<String>>,
}

impl Live {
    fn on_bytes(&mut self) {
        let now = Instant::now();
        loop {
            let max = self.conn.max_incoming_packet_size();
            match decode(&mut self.read, self.conn.protocol(), max) {
                Ok(Some(packet)) => {
                    if let Some(log) = &mut self.log {
                        log.push(describe(&packet, self.conn.protocol(), false));
                    }
                    if let Err(e) = self.conn.handle_packet(now, packet) {
                        tracing::debug!("closing: {e}");
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("closing: {e}");
                    self.conn.handle_decode_error(&e);
                    self.read.clear();
                    return;
                }
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let protocol = self.conn.protocol();
        while let Some(packet) = self.conn.poll_transmit(Instant::now()) {
            if let Some(log) = &mut self.log {
                log.push(describe(&packet, protocol, true));
            }
            if let Err(e) = packet.encode(protocol, &mut self.write) {
                tracing::debug!("cannot encode {:?}: {e}", packet.packet_type());
            }
        }
        if !self.write.is_empty() {
            self.stream.write_all(&mut self.write).await?;
        }
        Ok(())
    }

    async fn stop(&mut self, reason_code: ReasonCode, done: Option<oneshot::Sender<()>>) -> Ended {
        self.conn.disconnect(reason_code, Properties::default());
        let _ = self.flush().await;
        self.stream.shutdown().await;
        Ended::Stop(done)
    }
}

fn complete<T>(done: Done<T>, result: Result<T, ClientError>) {
    if let Some(done) = done {
        let _ = done.send(result);
    }
}

fn fail_control(control: Control, error: ClientError) {
    match control {
        Control::Subscribe { done, .. } | Control::Unsubscribe { done, .. } => {
            complete(done, Err(error))
        }
    }
}

/// A packet as libmosquitto logs it (and mosquitto_pub -d prints it):
/// "sending PUBLISH (d0, q1, r0, m1, 'a/b', ... (5 bytes))", "received
/// PUBACK (Mid: 1, RC:0)". `sending` picks the direction's wording.
fn describe(packet: &Packet, protocol: pigeon_proto::Protocol, sending: bool) -> String {
    let flag = |b: bool| u8::from(b);
    let direction = if sending { "Sending" } else { "Received" };
    let body = match packet {
        Packet::Connect(_) => "CONNECT".to_owned(),
        Packet::ConnAck(a) => {
            let code = match protocol.is_v5() {
                true => a.reason_code.value(),
                false => pigeon_proto::reason::v3_connack::encode(a.reason_code),
            };
            format!("CONNACK ({code})")
        }
        Packet::Publish(p) => format!(
            "PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            flag(p.dup),
            p.qos as u8,
            flag(p.retain),
            p.packet_id.map_or(0, PacketId::get),
            p.topic.as_str(),
            p.payload.len()
        ),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            let name = match packet {
                Packet::PubAck(_) => "PUBACK",
                Packet::PubRec(_) => "PUBREC",
                Packet::PubRel(_) => "PUBREL",
                _ => "PUBCOMP",
            };
            let id = a.packet_id.get();
            let code = a.reason_code.value();
            match (sending, name) {
                (true, "PUBACK" | "PUBREC") => format!("{name} (m{id}, rc{code})"),
                (true, _) => format!("{name} (m{id})"),
                (false, "PUBACK" | "PUBCOMP") => format!("{name} (Mid: {id}, RC:{code})"),
                (false, _) => format!("{name} (Mid: {id})"),
            }
        }
        Packet::Subscribe(s) => {
            let lines: Vec<String> = s
                .filters
                .iter()
                .map(|f| {
                    format!(
                        "SUBSCRIBE (Mid: {}, Topic: {}, QoS: {}, Options: 0x{:02x})",
                        s.packet_id.get(),
                        f.filter.as_str(),
                        f.options.qos as u8,
                        f.options.to_byte() & !0x03
                    )
                })
                .collect();
            // One line per filter, as libmosquitto prints them.
            return lines
                .iter()
                .map(|l| format!("{direction} {l}"))
                .collect::<Vec<_>>()
                .join("\n");
        }
        Packet::SubAck(_) => "SUBACK".to_owned(),
        Packet::Unsubscribe(u) => {
            let lines: Vec<String> = u
                .filters
                .iter()
                .map(|f| {
                    format!(
                        "{direction} UNSUBSCRIBE (Mid: {}, Topic: {})",
                        u.packet_id.get(),
                        f.as_str()
                    )
                })
                .collect();
            return lines.join("\n");
        }
        Packet::UnsubAck(_) => "UNSUBACK".to_owned(),
        Packet::PingReq => "PINGREQ".to_owned(),
        Packet::PingResp => "PINGRESP".to_owned(),
        Packet::Disconnect(_) => "DISCONNECT".to_owned(),
        Packet::Auth(a) => format!("AUTH ({})", a.reason_code.value()),
    };
    format!("{direction} {body}")
}

/// A number in [0, 1) for backoff jitter.
fn random_unit() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
