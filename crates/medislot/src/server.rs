//! `medislot serve`: bind, serve, shut down gracefully on SIGTERM or Ctrl-C.

use crate::cli::{DbArgs, NotifyArgs, ServeArgs};
use anyhow::Context;
use medislot_app::{App, AppConfig};
use medislot_http::HttpOptions;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.hold_ttl_secs < 10 || args.hold_ttl_secs > 3600 {
        anyhow::bail!("--hold-ttl-secs must be between 10 and 3600");
    }
    let store = args.db.connect(true).await?;
    let config = AppConfig {
        region: args.region.clone(),
        hold_ttl: jiff::SignedDuration::from_secs(args.hold_ttl_secs),
        availability_cache_ttl: std::time::Duration::from_millis(args.availability_cache_ttl_ms),
        directory_cache_ttl: std::time::Duration::from_millis(args.directory_cache_ttl_ms),
        waitlist_hold_ttl: waitlist_hold(&args.notify)?,
        arrival_window: jiff::SignedDuration::from_mins(args.arrival_window_minutes),
        webhooks_allow_private: args.notify.webhooks_allow_private,
        video: args.video_url.clone(),
        ..AppConfig::default()
    };
    let links = region_links(&args)?;
    let mut app = App::new(store, config);
    if let Some(url) = &args.read_database_url {
        if !app.store().backend().starts_with("postgres") {
            anyhow::bail!("--read-database-url needs --database-url on PostgreSQL");
        }
        let replica = args.db.connect_replica(url).await?;
        app = app.with_read_replica(replica, std::time::Duration::from_millis(args.read_max_lag_ms));
    }
    if let Some(l) = &links {
        app = app.with_region_link(l.clone());
    }
    if args.demo {
        crate::demo::seed(&app).await.context("seeding demo data")?;
    }
    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let node = medislot_http::node(
        app.clone(),
        HttpOptions {
            logins_per_minute: args.logins_per_minute,
            client_attempts_per_minute: args.client_attempts_per_minute,
            trusted_proxies: args.trusted_proxies.clone(),
            request_timeout: std::time::Duration::from_millis(args.request_timeout_ms.max(100)),
            max_in_flight: args.max_in_flight as usize,
            region_secret: args.region_secret.clone(),
            region_secret_previous: args.region_secret_previous.clone(),
            ops_token: args.ops_token.clone(),
            body_read_timeout: std::time::Duration::from_millis(args.body_read_timeout_ms),
            https: args.notify.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            bulk_dir: args.db.data_dir.join("bulk"),
            public_reads_per_second: args.public_reads_per_second,
            bulk_republish: std::time::Duration::from_secs(args.bulk_republish_secs),
            public_url: args.notify.public_url.clone().unwrap_or_else(|| format!("http://{addr}")),
        },
    );
    let limits = crate::listener::Limits {
        header_read: std::time::Duration::from_millis(args.header_read_timeout_ms),
        idle: std::time::Duration::from_millis(args.idle_timeout_ms),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
    };
    let internal = match &args.internal_listen {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding {a}"))?;
            println!("medislot internal listening on http://{}", l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    let (stop_workers, stopped) = tokio::sync::watch::channel(false);
    let workers = if args.workers {
        let worker = medislot_workers::Workers::new(
            app.clone(),
            args.notify.mailer(&args.db)?,
            args.notify.worker_config(Some(&addr.to_string()))?,
        );
        let mut stopped = stopped.clone();
        Some(tokio::spawn(worker.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })))
    } else {
        None
    };
    let region_loops = links.map(|l| {
        let mut stopped = stopped.clone();
        tokio::spawn(l.run(app.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });
    // The read replica's lag, measured twice a second: reads go to it only while it keeps up.
    let replica_watch = app.has_read_replica().then(|| {
        let (app, stopped) = (app.clone(), stopped.clone());
        tokio::spawn(async move { app.watch_read_replica(stopped).await })
    });
    // Search's index: this node's changes, rows coming due, and a catch-up at start.
    let keeper = {
        let (app, stopped) = (app.clone(), stopped.clone());
        tokio::spawn(async move { app.run_search_keeper(stopped).await })
    };
    let router = node.router;
    let publisher = args.bulk_publish.then(|| {
        let mut stopped = stopped.clone();
        tokio::spawn(node.publisher.run(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });
    // Tests and scripts read this line to find the port.
    println!("medislot listening on http://{addr}");
    tracing::info!(%addr, region = %args.region, "listening");
    let drain = std::time::Duration::from_millis(args.request_timeout_ms.max(100)) + std::time::Duration::from_secs(1);
    let (stop_serving, _) = tokio::sync::broadcast::channel::<()>(1);
    let internal_served = internal.map(|l| {
        let mut stop = stop_serving.subscribe();
        let router = router.clone().layer(axum::Extension(medislot_http::InternalListener));
        tokio::spawn(crate::listener::serve(
            l,
            router,
            limits,
            async move {
                let _ = stop.recv().await;
            },
            drain,
        ))
    });
    let mut stop = stop_serving.subscribe();
    let public = tokio::spawn(crate::listener::serve(
        listener,
        router,
        limits,
        async move {
            let _ = stop.recv().await;
        },
        drain,
    ));
    shutdown_signal().await;
    let _ = stop_serving.send(());
    public.await??;
    if let Some(i) = internal_served {
        i.await??;
    }
    let _ = stop_workers.send(true);
    if let Some(w) = workers {
        let _ = w.await;
    }
    let _ = keeper.await;
    if let Some(r) = replica_watch {
        let _ = r.await;
    }
    if let Some(r) = region_loops {
        let _ = r.await;
    }
    if let Some(p) = publisher {
        let _ = p.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The links to peer regions, when `--peer` names any.
fn region_links(args: &ServeArgs) -> anyhow::Result<Option<std::sync::Arc<medislot_workers::regions::PeerLinks>>> {
    if args.peers.is_empty() {
        return Ok(None);
    }
    let Some(secret) = args.region_secret.clone().filter(|s| s.len() >= 16) else {
        anyhow::bail!("--peer needs --region-secret (at least 16 characters), shared by all regions");
    };
    let mut peers = std::collections::BTreeMap::new();
    for p in &args.peers {
        let Some((name, url)) = p.split_once('=') else {
            anyhow::bail!("--peer {p:?}: expected NAME=URL, e.g. us=http://10.0.0.2:8080");
        };
        if name == args.region || !url.starts_with("http") {
            anyhow::bail!("--peer {p:?}: a peer is another region's NAME=http(s)://address");
        }
        peers.insert(name.to_string(), url.to_string());
    }
    let config = medislot_workers::regions::RegionConfig {
        region: args.region.clone(),
        peers,
        secret,
        heartbeat: std::time::Duration::from_millis(args.heartbeat_ms.max(20)),
        forward_timeout: std::time::Duration::from_millis(args.forward_timeout_ms.max(50)),
        replication: std::time::Duration::from_millis(args.replication_ms.max(50)),
    };
    Ok(Some(medislot_workers::regions::PeerLinks::new(config)))
}

fn waitlist_hold(n: &NotifyArgs) -> anyhow::Result<jiff::SignedDuration> {
    if n.waitlist_hold_secs < 10 || n.waitlist_hold_secs > 7 * 24 * 3600 {
        anyhow::bail!("--waitlist-hold-secs must be between 10 and 604800");
    }
    Ok(jiff::SignedDuration::from_secs(n.waitlist_hold_secs))
}

/// `medislot worker`: the notification workers alone, until SIGTERM or Ctrl-C.
pub async fn work(db: DbArgs, region: String, notify: NotifyArgs) -> anyhow::Result<()> {
    let store = db.connect(true).await?;
    let config = AppConfig { region, waitlist_hold_ttl: waitlist_hold(&notify)?, ..AppConfig::default() };
    let app = App::new(store, config);
    let worker = medislot_workers::Workers::new(app, notify.mailer(&db)?, notify.worker_config(None)?);
    println!("medislot worker running");
    worker.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
