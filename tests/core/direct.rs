//! Internal services calling the reference agent directly with standard gRPC tooling.

use agent_bridge_proto::v1::{ChatRequest, agent_client::AgentClient, chat_event::Payload};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::support::spawn_agent;

#[tokio::test]
async fn the_agent_serves_health_and_reflection() {
    let agent = spawn_agent().await;

    let channel = tonic::transport::Channel::from_shared(agent.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "agent.v1.Agent"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"agent.v1.Agent".to_owned()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_direct_grpc_client_sees_the_same_run() {
    let agent = spawn_agent().await;
    let mut client = AgentClient::connect(agent.url.clone()).await.unwrap();
    let mut stream = client
        .chat(ChatRequest {
            message: "hello".into(),
            thread_id: "t-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut sequences = Vec::new();
    let mut last = None;
    while let Some(event) = stream.message().await.unwrap() {
        assert_eq!(event.thread_id, "t-1");
        sequences.push(event.sequence);
        last = event.payload;
    }
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert!(matches!(last, Some(Payload::RunCompleted(_))));
}

fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::iter([item])
}
