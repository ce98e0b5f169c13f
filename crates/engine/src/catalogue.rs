//! The calls tripwire watches, as data: the destructive calls it counts into bursts
//! ([`WATCHED`]) and the context calls it reads to tell their story ([`CONTEXT`]: where
//! sessions came from, who decided a service's terminations, who disarmed the tripwire).
//!
//! Everything that names a watched call reads it here: the extraction, the alert's words,
//! the default `deny_actions`, and the EventBridge patterns both stacks forward and
//! match on ([`event_patterns`], printed by `tripwire check-policy --get event_patterns`
//! and compared with the templates by `tests/infra`). Adding a call is one entry here,
//! one fixture and one scenario.

use crate::record::CLOUDTRAIL_DETAIL_TYPE;
use crate::time::Millis;
use serde_json::{json, Value};

/// A destructive call, counted into bursts.
#[derive(Debug, PartialEq, Eq)]
pub struct Watched {
    /// The EventBridge `source` its CloudTrail events arrive with (`aws.ec2`).
    pub source: &'static str,
    /// CloudTrail `eventSource`.
    pub event_source: &'static str,
    /// CloudTrail `eventName`.
    pub event_name: &'static str,
    /// The IAM action the brake denies to stop it.
    pub deny_action: &'static str,
    /// What it destroys.
    pub resource: Resource,
    /// How the alerts speak of it.
    pub words: Words,
    /// The runbook's first look: where on-call sees these calls for themselves
    /// (`{region}` and `{start}` are the incident's).
    pub runbook: &'static str,
    /// Set for a precursor ([`PRECURSORS`]): the call destroys nothing itself, and is
    /// recorded only when its request takes a protection away, as this reads it.
    pub precursor: Option<Weakens>,
}

/// What a watched call destroys, and how a record says which.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// The resource type as the Service Authorization Reference names it, prefixed by its
    /// service (`ec2:instance`, `rds:db`): what incidents, alerts and the policy's
    /// `[resources."TYPE"]` tables call it. Bursts are counted per principal and type.
    pub kind: &'static str,
    /// The CloudFormation resource type (`AWS::EC2::Instance`).
    pub resource_type: &'static str,
    /// Where the record names what was destroyed.
    pub ids: Ids,
    /// Where the request names the IDs, in words (for the docs).
    pub request_ids: &'static str,
    /// Where the response confirms each one's state before the call.
    pub confirmed_by: &'static str,
    /// States before the call that mean "already gone": nothing died.
    pub already_gone: &'static [&'static str],
    /// Error codes after which the service still destroyed some of the IDs asked for.
    pub partial_failure: &'static [&'static str],
    /// The most IDs one call can carry; more is not a record the service wrote.
    pub max_ids: usize,
    /// The longest ID the service issues, with room to spare; longer is not an ID.
    pub max_id_len: usize,
    /// The default threshold and window for this type; `None` for the policy's own
    /// `threshold` and `window` (EC2 instances, the seed's door).
    pub default: Option<(u32, Millis)>,
}

/// Where a watched call's record names the resources it destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ids {
    /// EC2's `instancesSet.items[].instanceId`, confirmed by the response's
    /// `previousState` (TerminateInstances).
    InstancesSet,
    /// One ID in this request parameter; the call destroyed it if it succeeded.
    Param(&'static str),
    /// The account the call was made in (`recipientAccountId`): `LeaveOrganization`
    /// takes no parameter.
    Recipient,
}

const MINUTE: Millis = 60_000;

/// How the alerts speak of a watched call.
#[derive(Debug, PartialEq, Eq)]
pub struct Words {
    /// One resource (`instance`).
    pub noun: &'static str,
    /// Several (`instances`).
    pub nouns: &'static str,
    /// What happened to them (`terminated`).
    pub verb: &'static str,
    /// A burst of them, in a sentence (`EC2 instance terminations`).
    pub burst: &'static str,
}

/// `ec2:TerminateInstances`, the call the 2018 wipe made.
pub const TERMINATE_INSTANCES: Watched = Watched {
    source: "aws.ec2",
    event_source: "ec2.amazonaws.com",
    event_name: "TerminateInstances",
    deny_action: "ec2:TerminateInstances",
    resource: Resource {
        kind: EC2_INSTANCE,
        resource_type: "AWS::EC2::Instance",
        ids: Ids::InstancesSet,
        request_ids: "requestParameters.instancesSet.items[].instanceId",
        confirmed_by: "responseElements.instancesSet.items[].previousState.name",
        // TerminateInstances is idempotent: an instance already going is not a kill.
        already_gone: &["shutting-down", "terminated"],
        // Termination protection on one instance fails the call, yet EC2 terminates the
        // others (in other Availability Zones).
        partial_failure: &["OperationNotPermitted"],
        max_ids: 1000,
        // Real IDs are i- plus 8 or 17 hex digits.
        max_id_len: 64,
        default: None,
    },
    words: Words {
        noun: "instance",
        nouns: "instances",
        verb: "terminated",
        burst: "EC2 instance terminations",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=TerminateInstances --start-time {start}",
    precursor: None,
};

/// The resource type of EC2 instances, the seed's door.
pub const EC2_INSTANCE: &str = "ec2:instance";

// Every other door. Each reads one ID from the request (the shapes are those of the
// public records in tests/fixtures/cloudtrail-corpus, or where none is public, of the
// API reference's parameters, as docs/policy-and-backtest.md lists), and destroyed it
// when the call succeeded. The default thresholds are above routine cleanup (a snapshot
// retention job, a CI stack's teardown) and far below a wipe; `[resources."TYPE"]`
// tables override them.

/// `ec2:DeleteVolume`.
const DELETE_VOLUME: Watched = Watched {
    source: "aws.ec2",
    event_source: "ec2.amazonaws.com",
    event_name: "DeleteVolume",
    deny_action: "ec2:DeleteVolume",
    resource: Resource {
        kind: "ec2:volume",
        resource_type: "AWS::EC2::Volume",
        ids: Ids::Param("volumeId"),
        request_ids: "requestParameters.volumeId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "EBS volume",
        nouns: "EBS volumes",
        verb: "deleted",
        burst: "EBS volume deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteVolume --start-time {start}",
    precursor: None,
};

/// `ec2:DeleteSnapshot`.
const DELETE_SNAPSHOT: Watched = Watched {
    source: "aws.ec2",
    event_source: "ec2.amazonaws.com",
    event_name: "DeleteSnapshot",
    deny_action: "ec2:DeleteSnapshot",
    resource: Resource {
        kind: "ec2:snapshot",
        resource_type: "AWS::EC2::Snapshot",
        ids: Ids::Param("snapshotId"),
        request_ids: "requestParameters.snapshotId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((50, 10 * MINUTE)),
    },
    words: Words {
        noun: "EBS snapshot",
        nouns: "EBS snapshots",
        verb: "deleted",
        burst: "EBS snapshot deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteSnapshot --start-time {start}",
    precursor: None,
};

/// `ec2:DeregisterImage`.
const DEREGISTER_IMAGE: Watched = Watched {
    source: "aws.ec2",
    event_source: "ec2.amazonaws.com",
    event_name: "DeregisterImage",
    deny_action: "ec2:DeregisterImage",
    resource: Resource {
        kind: "ec2:image",
        resource_type: "AWS::EC2::Image",
        ids: Ids::Param("imageId"),
        request_ids: "requestParameters.imageId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "AMI",
        nouns: "AMIs",
        verb: "deregistered",
        burst: "AMI deregistrations",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeregisterImage --start-time {start}",
    precursor: None,
};

/// `rds:DeleteDBInstance`.
const DELETE_DB_INSTANCE: Watched = Watched {
    source: "aws.rds",
    event_source: "rds.amazonaws.com",
    event_name: "DeleteDBInstance",
    deny_action: "rds:DeleteDBInstance",
    resource: Resource {
        kind: "rds:db",
        resource_type: "AWS::RDS::DBInstance",
        ids: Ids::Param("dBInstanceIdentifier"),
        request_ids: "requestParameters.dBInstanceIdentifier",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 128,
        default: Some((3, 10 * MINUTE)),
    },
    words: Words {
        noun: "DB instance",
        nouns: "DB instances",
        verb: "deleted",
        burst: "RDS DB instance deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteDBInstance --start-time {start}",
    precursor: None,
};

/// `rds:DeleteDBCluster`.
const DELETE_DB_CLUSTER: Watched = Watched {
    source: "aws.rds",
    event_source: "rds.amazonaws.com",
    event_name: "DeleteDBCluster",
    deny_action: "rds:DeleteDBCluster",
    resource: Resource {
        kind: "rds:cluster",
        resource_type: "AWS::RDS::DBCluster",
        ids: Ids::Param("dBClusterIdentifier"),
        request_ids: "requestParameters.dBClusterIdentifier",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 128,
        default: Some((2, 10 * MINUTE)),
    },
    words: Words {
        noun: "DB cluster",
        nouns: "DB clusters",
        verb: "deleted",
        burst: "RDS DB cluster deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteDBCluster --start-time {start}",
    precursor: None,
};

/// `rds:DeleteDBSnapshot`.
const DELETE_DB_SNAPSHOT: Watched = Watched {
    source: "aws.rds",
    event_source: "rds.amazonaws.com",
    event_name: "DeleteDBSnapshot",
    deny_action: "rds:DeleteDBSnapshot",
    resource: Resource {
        kind: "rds:snapshot",
        resource_type: "AWS::RDS::DBSnapshot",
        ids: Ids::Param("dBSnapshotIdentifier"),
        request_ids: "requestParameters.dBSnapshotIdentifier",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 255,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "DB snapshot",
        nouns: "DB snapshots",
        verb: "deleted",
        burst: "RDS DB snapshot deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteDBSnapshot --start-time {start}",
    precursor: None,
};

/// `rds:DeleteDBClusterSnapshot`.
const DELETE_DB_CLUSTER_SNAPSHOT: Watched = Watched {
    source: "aws.rds",
    event_source: "rds.amazonaws.com",
    event_name: "DeleteDBClusterSnapshot",
    deny_action: "rds:DeleteDBClusterSnapshot",
    resource: Resource {
        kind: "rds:cluster-snapshot",
        resource_type: "AWS::RDS::DBClusterSnapshot",
        ids: Ids::Param("dBClusterSnapshotIdentifier"),
        request_ids: "requestParameters.dBClusterSnapshotIdentifier",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 255,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "DB cluster snapshot",
        nouns: "DB cluster snapshots",
        verb: "deleted",
        burst: "RDS DB cluster snapshot deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteDBClusterSnapshot --start-time {start}",
    precursor: None,
};

/// `dynamodb:DeleteTable`.
const DELETE_TABLE: Watched = Watched {
    source: "aws.dynamodb",
    event_source: "dynamodb.amazonaws.com",
    event_name: "DeleteTable",
    deny_action: "dynamodb:DeleteTable",
    resource: Resource {
        kind: "dynamodb:table",
        resource_type: "AWS::DynamoDB::Table",
        ids: Ids::Param("tableName"),
        request_ids: "requestParameters.tableName",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 1024,
        default: Some((3, 10 * MINUTE)),
    },
    words: Words {
        noun: "DynamoDB table",
        nouns: "DynamoDB tables",
        verb: "deleted",
        burst: "DynamoDB table deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteTable --start-time {start}",
    precursor: None,
};

/// `s3:DeleteBucket`.
const DELETE_BUCKET: Watched = Watched {
    source: "aws.s3",
    event_source: "s3.amazonaws.com",
    event_name: "DeleteBucket",
    deny_action: "s3:DeleteBucket",
    resource: Resource {
        kind: "s3:bucket",
        resource_type: "AWS::S3::Bucket",
        ids: Ids::Param("bucketName"),
        request_ids: "requestParameters.bucketName",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 63,
        default: Some((5, 10 * MINUTE)),
    },
    words: Words {
        noun: "S3 bucket",
        nouns: "S3 buckets",
        verb: "deleted",
        burst: "S3 bucket deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteBucket --start-time {start}",
    precursor: None,
};

/// `kms:ScheduleKeyDeletion`.
const SCHEDULE_KEY_DELETION: Watched = Watched {
    source: "aws.kms",
    event_source: "kms.amazonaws.com",
    event_name: "ScheduleKeyDeletion",
    deny_action: "kms:ScheduleKeyDeletion",
    resource: Resource {
        kind: "kms:key",
        resource_type: "AWS::KMS::Key",
        ids: Ids::Param("keyId"),
        request_ids: "requestParameters.keyId (an ID, an ARN or an alias)",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 2048,
        default: Some((2, 60 * MINUTE)),
    },
    words: Words {
        noun: "KMS key",
        nouns: "KMS keys",
        verb: "scheduled for deletion",
        burst: "KMS key deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=ScheduleKeyDeletion --start-time {start}",
    precursor: None,
};

/// `backup:DeleteRecoveryPoint`.
const DELETE_RECOVERY_POINT: Watched = Watched {
    source: "aws.backup",
    event_source: "backup.amazonaws.com",
    event_name: "DeleteRecoveryPoint",
    deny_action: "backup:DeleteRecoveryPoint",
    resource: Resource {
        kind: "backup:recoveryPoint",
        resource_type: "AWS::Backup::RecoveryPoint",
        ids: Ids::Param("recoveryPointArn"),
        request_ids: "requestParameters.recoveryPointArn",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 2048,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "recovery point",
        nouns: "recovery points",
        verb: "deleted",
        burst: "AWS Backup recovery point deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteRecoveryPoint --start-time {start}",
    precursor: None,
};

/// `backup:DeleteBackupVault`.
const DELETE_BACKUP_VAULT: Watched = Watched {
    source: "aws.backup",
    event_source: "backup.amazonaws.com",
    event_name: "DeleteBackupVault",
    deny_action: "backup:DeleteBackupVault",
    resource: Resource {
        kind: "backup:backupVault",
        resource_type: "AWS::Backup::BackupVault",
        ids: Ids::Param("backupVaultName"),
        request_ids: "requestParameters.backupVaultName",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((2, 60 * MINUTE)),
    },
    words: Words {
        noun: "backup vault",
        nouns: "backup vaults",
        verb: "deleted",
        burst: "AWS Backup vault deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteBackupVault --start-time {start}",
    precursor: None,
};

/// `eks:DeleteCluster`.
const DELETE_CLUSTER: Watched = Watched {
    source: "aws.eks",
    event_source: "eks.amazonaws.com",
    event_name: "DeleteCluster",
    deny_action: "eks:DeleteCluster",
    resource: Resource {
        kind: "eks:cluster",
        resource_type: "AWS::EKS::Cluster",
        ids: Ids::Param("name"),
        request_ids: "requestParameters.name",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 100,
        default: Some((2, 60 * MINUTE)),
    },
    words: Words {
        noun: "EKS cluster",
        nouns: "EKS clusters",
        verb: "deleted",
        burst: "EKS cluster deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteCluster --start-time {start}",
    precursor: None,
};

/// `elasticfilesystem:DeleteFileSystem`.
const DELETE_FILE_SYSTEM: Watched = Watched {
    source: "aws.elasticfilesystem",
    event_source: "elasticfilesystem.amazonaws.com",
    event_name: "DeleteFileSystem",
    deny_action: "elasticfilesystem:DeleteFileSystem",
    resource: Resource {
        kind: "elasticfilesystem:file-system",
        resource_type: "AWS::EFS::FileSystem",
        ids: Ids::Param("fileSystemId"),
        request_ids: "requestParameters.fileSystemId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 128,
        default: Some((3, 60 * MINUTE)),
    },
    words: Words {
        noun: "EFS file system",
        nouns: "EFS file systems",
        verb: "deleted",
        burst: "EFS file system deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteFileSystem --start-time {start}",
    precursor: None,
};

/// `elasticache:DeleteCacheCluster`.
const DELETE_CACHE_CLUSTER: Watched = Watched {
    source: "aws.elasticache",
    event_source: "elasticache.amazonaws.com",
    event_name: "DeleteCacheCluster",
    deny_action: "elasticache:DeleteCacheCluster",
    resource: Resource {
        kind: "elasticache:cluster",
        resource_type: "AWS::ElastiCache::CacheCluster",
        ids: Ids::Param("cacheClusterId"),
        request_ids: "requestParameters.cacheClusterId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((3, 10 * MINUTE)),
    },
    words: Words {
        noun: "cache cluster",
        nouns: "cache clusters",
        verb: "deleted",
        burst: "ElastiCache cluster deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteCacheCluster --start-time {start}",
    precursor: None,
};

/// `elasticache:DeleteReplicationGroup`.
const DELETE_REPLICATION_GROUP: Watched = Watched {
    source: "aws.elasticache",
    event_source: "elasticache.amazonaws.com",
    event_name: "DeleteReplicationGroup",
    deny_action: "elasticache:DeleteReplicationGroup",
    resource: Resource {
        kind: "elasticache:replicationgroup",
        resource_type: "AWS::ElastiCache::ReplicationGroup",
        ids: Ids::Param("replicationGroupId"),
        request_ids: "requestParameters.replicationGroupId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((3, 10 * MINUTE)),
    },
    words: Words {
        noun: "replication group",
        nouns: "replication groups",
        verb: "deleted",
        burst: "ElastiCache replication group deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteReplicationGroup --start-time {start}",
    precursor: None,
};

/// `lambda:DeleteFunction`.
const DELETE_FUNCTION: Watched = Watched {
    source: "aws.lambda",
    event_source: "lambda.amazonaws.com",
    event_name: "DeleteFunction20150331",
    deny_action: "lambda:DeleteFunction",
    resource: Resource {
        kind: "lambda:function",
        resource_type: "AWS::Lambda::Function",
        ids: Ids::Param("functionName"),
        request_ids: "requestParameters.functionName (a name or an ARN)",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 170,
        default: Some((20, 10 * MINUTE)),
    },
    words: Words {
        noun: "Lambda function",
        nouns: "Lambda functions",
        verb: "deleted",
        burst: "Lambda function deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteFunction20150331 --start-time {start}",
    precursor: None,
};

/// `secretsmanager:DeleteSecret`.
const DELETE_SECRET: Watched = Watched {
    source: "aws.secretsmanager",
    event_source: "secretsmanager.amazonaws.com",
    event_name: "DeleteSecret",
    deny_action: "secretsmanager:DeleteSecret",
    resource: Resource {
        kind: "secretsmanager:Secret",
        resource_type: "AWS::SecretsManager::Secret",
        ids: Ids::Param("secretId"),
        request_ids: "requestParameters.secretId (a name or an ARN)",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 2048,
        default: Some((10, 10 * MINUTE)),
    },
    words: Words {
        noun: "secret",
        nouns: "secrets",
        verb: "deleted",
        burst: "Secrets Manager secret deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteSecret --start-time {start}",
    precursor: None,
};

/// `route53:DeleteHostedZone`.
const DELETE_HOSTED_ZONE: Watched = Watched {
    source: "aws.route53",
    event_source: "route53.amazonaws.com",
    event_name: "DeleteHostedZone",
    deny_action: "route53:DeleteHostedZone",
    resource: Resource {
        kind: "route53:hostedzone",
        resource_type: "AWS::Route53::HostedZone",
        ids: Ids::Param("id"),
        request_ids: "requestParameters.id",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 64,
        default: Some((3, 60 * MINUTE)),
    },
    words: Words {
        noun: "hosted zone",
        nouns: "hosted zones",
        verb: "deleted",
        burst: "Route 53 hosted zone deletions",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=DeleteHostedZone --start-time {start}",
    precursor: None,
};

/// `organizations:LeaveOrganization`.
const LEAVE_ORGANIZATION: Watched = Watched {
    source: "aws.organizations",
    event_source: "organizations.amazonaws.com",
    event_name: "LeaveOrganization",
    deny_action: "organizations:LeaveOrganization",
    resource: Resource {
        kind: "organizations:account",
        resource_type: "AWS::Organizations::Account",
        ids: Ids::Recipient,
        request_ids: "recipientAccountId (the account that left)",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 12,
        default: Some((1, 60 * MINUTE)),
    },
    words: Words {
        noun: "account",
        nouns: "accounts",
        verb: "taken out of the organization",
        burst: "accounts leaving the organization",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=LeaveOrganization --start-time {start}",
    precursor: None,
};

/// `organizations:CloseAccount`.
const CLOSE_ACCOUNT: Watched = Watched {
    source: "aws.organizations",
    event_source: "organizations.amazonaws.com",
    event_name: "CloseAccount",
    deny_action: "organizations:CloseAccount",
    resource: Resource {
        kind: "organizations:account",
        resource_type: "AWS::Organizations::Account",
        ids: Ids::Param("accountId"),
        request_ids: "requestParameters.accountId",
        confirmed_by: "no errorCode",
        already_gone: &[],
        partial_failure: &[],
        max_ids: 1,
        max_id_len: 12,
        default: Some((1, 60 * MINUTE)),
    },
    words: Words {
        noun: "account",
        nouns: "accounts",
        verb: "closed",
        burst: "account closures",
    },
    runbook: "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=CloseAccount --start-time {start}",
    precursor: None,
};

/// Every destructive call the engine counts.
pub const WATCHED: [&Watched; 22] = [
    &TERMINATE_INSTANCES,
    &DELETE_VOLUME,
    &DELETE_SNAPSHOT,
    &DEREGISTER_IMAGE,
    &DELETE_DB_INSTANCE,
    &DELETE_DB_CLUSTER,
    &DELETE_DB_SNAPSHOT,
    &DELETE_DB_CLUSTER_SNAPSHOT,
    &DELETE_TABLE,
    &DELETE_BUCKET,
    &SCHEDULE_KEY_DELETION,
    &DELETE_RECOVERY_POINT,
    &DELETE_BACKUP_VAULT,
    &DELETE_CLUSTER,
    &DELETE_FILE_SYSTEM,
    &DELETE_CACHE_CLUSTER,
    &DELETE_REPLICATION_GROUP,
    &DELETE_FUNCTION,
    &DELETE_SECRET,
    &DELETE_HOSTED_ZONE,
    &LEAVE_ORGANIZATION,
    &CLOSE_ACCOUNT,
];

/// The resource type precursors are counted under: a burst of them is one principal's
/// protections removed, whatever they protected (`precursor_burst`, alert-only).
pub const PRECURSOR: &str = "precursor";

/// How a precursor's request takes a protection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakens {
    /// EC2's `ModifyInstanceAttribute`: termination protection off
    /// (`disableApiTermination` false), or an OS shutdown made a termination
    /// (`instanceInitiatedShutdownBehavior` `terminate`), after which the instance dies
    /// with no `TerminateInstances` record at all. Each is logged as `{"value": …}`, or
    /// as the request's `attribute` and `value` pair.
    InstanceProtection,
    /// A boolean request parameter set to `false` (`deletionProtection`).
    Off(&'static str),
    /// S3's `PutBucketLifecycle`: an enabled rule expiring current objects or noncurrent
    /// versions within [`LIFECYCLE_DAYS`] day(s), or on a date already that close.
    ShortLifecycle,
}

/// A lifecycle rule that expires objects within this many days empties a bucket by
/// tomorrow: a deletion that no `DeleteObject` record will name.
pub const LIFECYCLE_DAYS: u64 = 1;

/// A precursor: the same shape as a destructive call, counted under [`PRECURSOR`] and
/// spoken of in the same words whatever it weakened. (Positional, as a table row.)
#[allow(clippy::too_many_arguments)]
const fn precursor(
    source: &'static str,
    event_source: &'static str,
    event_name: &'static str,
    deny_action: &'static str,
    resource_type: &'static str,
    ids: &'static str,
    weakens: Weakens,
    runbook: &'static str,
) -> Watched {
    Watched {
        source,
        event_source,
        event_name,
        deny_action,
        resource: Resource {
            kind: PRECURSOR,
            resource_type,
            ids: Ids::Param(ids),
            request_ids: ids,
            confirmed_by: "no errorCode, and a request that removes the protection",
            already_gone: &[],
            partial_failure: &[],
            max_ids: 1,
            max_id_len: 255,
            // Ten protections removed within an hour by one principal is preparation, not
            // routine: a stack teardown lifts the few its resources carry.
            default: Some((10, 60 * MINUTE)),
        },
        words: Words {
            noun: "protection",
            nouns: "protections",
            verb: "removed",
            burst: "protections removed",
        },
        runbook,
        precursor: Some(weakens),
    }
}

/// Calls that remove a protection a wipe would meet: recorded only when their request
/// does (see [`Weakens`]), listed on the incidents of the principal that made them, and
/// a burst of them alone is an alert-only `precursor_burst`. The brake denies them too.
pub const PRECURSORS: [Watched; 5] = [
    precursor(
        "aws.ec2",
        "ec2.amazonaws.com",
        "ModifyInstanceAttribute",
        "ec2:ModifyInstanceAttribute",
        "AWS::EC2::Instance",
        "instanceId",
        Weakens::InstanceProtection,
        "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=ModifyInstanceAttribute --start-time {start}",
    ),
    precursor(
        "aws.rds",
        "rds.amazonaws.com",
        "ModifyDBInstance",
        "rds:ModifyDBInstance",
        "AWS::RDS::DBInstance",
        "dBInstanceIdentifier",
        Weakens::Off("deletionProtection"),
        "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=ModifyDBInstance --start-time {start}",
    ),
    precursor(
        "aws.rds",
        "rds.amazonaws.com",
        "ModifyDBCluster",
        "rds:ModifyDBCluster",
        "AWS::RDS::DBCluster",
        "dBClusterIdentifier",
        Weakens::Off("deletionProtection"),
        "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=ModifyDBCluster --start-time {start}",
    ),
    precursor(
        "aws.dynamodb",
        "dynamodb.amazonaws.com",
        "UpdateTable",
        "dynamodb:UpdateTable",
        "AWS::DynamoDB::Table",
        "tableName",
        Weakens::Off("deletionProtectionEnabled"),
        "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=UpdateTable --start-time {start}",
    ),
    // The API is PutBucketLifecycleConfiguration; CloudTrail names it PutBucketLifecycle,
    // and IAM's action is s3:PutLifecycleConfiguration.
    precursor(
        "aws.s3",
        "s3.amazonaws.com",
        "PutBucketLifecycle",
        "s3:PutLifecycleConfiguration",
        "AWS::S3::Bucket",
        "bucketName",
        Weakens::ShortLifecycle,
        "aws cloudtrail lookup-events --region {region} --lookup-attributes AttributeKey=EventName,AttributeValue=PutBucketLifecycle --start-time {start}",
    ),
];

/// The first watched call that destroys `kind`: how alerts speak of it.
pub fn of_kind(kind: &str) -> &'static Watched {
    every()
        .find(|w| w.resource.kind == kind)
        .unwrap_or(&TERMINATE_INSTANCES)
}

/// Every catalogued call: the destructive ones, then the precursors.
pub fn every() -> impl Iterator<Item = &'static Watched> {
    WATCHED.iter().copied().chain(PRECURSORS.iter())
}

/// Every type counted, each once, in catalogue order: the resource types, then
/// [`PRECURSOR`].
pub fn kinds() -> Vec<&'static str> {
    distinct(every().map(|w| w.resource.kind))
}

/// The watched call a record's `eventSource` and `eventName` name, if any.
pub fn watched(event_source: &str, event_name: &str) -> Option<&'static Watched> {
    if !may_name(event_name) {
        return None;
    }
    every().find(|w| w.event_source == event_source && w.event_name == event_name)
}

/// Whether `event_name` may be a catalogued call's: `false` is certain, `true` means
/// "look it up". Most records of a trail name calls neither list holds, and a 256-slot
/// filter built at compile time turns them away before either list is walked, so the
/// catalogue's growth costs them nothing.
pub fn may_name(event_name: &str) -> bool {
    let s = slot(event_name.as_bytes());
    NAMES[s / 64] >> (s % 64) & 1 == 1
}

const fn slot(name: &[u8]) -> usize {
    let n = name.len();
    if n == 0 {
        return 0;
    }
    (n.wrapping_mul(31)
        ^ (name[0] as usize).wrapping_mul(7)
        ^ (name[n - 1] as usize).wrapping_mul(13)
        ^ name[n / 2] as usize)
        & 255
}

const NAMES: [u64; 4] = {
    let mut f = [0u64; 4];
    let mut i = 0;
    while i < WATCHED.len() {
        let s = slot(WATCHED[i].event_name.as_bytes());
        f[s / 64] |= 1 << (s % 64);
        i += 1;
    }
    let mut i = 0;
    while i < PRECURSORS.len() {
        let s = slot(PRECURSORS[i].event_name.as_bytes());
        f[s / 64] |= 1 << (s % 64);
        i += 1;
    }
    let mut i = 0;
    while i < CONTEXT.len() {
        let s = slot(CONTEXT[i].event_name.as_bytes());
        f[s / 64] |= 1 << (s % 64);
        i += 1;
    }
    f
};

/// Whether watched call `w` is also a context call (`ScheduleKeyDeletion`, a tamper
/// target too): decided once, at compile time, from the two lists, so the hot path of
/// every other watched call asks nothing of the context list.
pub fn also_context(w: &Watched) -> bool {
    WATCHED
        .iter()
        .position(|x| x.event_name == w.event_name && x.event_source == w.event_source)
        .is_some_and(|i| ALSO_CONTEXT[i])
}

const ALSO_CONTEXT: [bool; WATCHED.len()] = {
    const fn same(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut out = [false; WATCHED.len()];
    let mut w = 0;
    while w < WATCHED.len() {
        let mut c = 0;
        while c < CONTEXT.len() {
            if same(WATCHED[w].event_name, CONTEXT[c].event_name)
                && same(WATCHED[w].event_source, CONTEXT[c].event_source)
            {
                out[w] = true;
            }
            c += 1;
        }
        w += 1;
    }
    out
};

/// What a context call tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It issued a session: where later calls made with its key came from.
    Assumption,
    /// It decides terminations a service then carries out, as its request shows.
    Initiator(Decides),
    /// It may disarm one of the tripwire's parts, named by this request parameter.
    Tamper(TamperTarget),
}

/// When an initiator call decides terminations, read from its request: only such a call
/// is credited with the instances a service then terminates (see `initiator::credit`).
/// A call that decides none is still kept, to name as a service burst's initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decides {
    /// Whenever it succeeds (a node group, a stack, a job flow deleted).
    Always,
    /// When this boolean request parameter is `true` (`forceDelete`: without it, Auto
    /// Scaling refuses to delete a group that still has instances).
    WhenTrue(&'static str),
    /// When the request sets one of these parameters (a capacity change; a call that
    /// only edits a launch template or a health check decides nothing).
    WhenSet(&'static [&'static str]),
    /// Exactly the instance this request parameter names.
    Instance(&'static str),
}

/// Which part of the tripwire a tamper call may touch, and so which request parameter
/// names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperTarget {
    /// A trail, by `name`.
    Trail,
    /// A trail's event selectors, by `trailName`.
    TrailSelectors,
    /// A forwarding rule, by `name`.
    Rule,
    /// A forwarding rule's targets, by `rule`.
    RuleTargets,
    /// An IAM role, user or policy of the tripwire's (see `armed`).
    Iam,
    /// A KMS key, by `keyId` (an ID or an ARN).
    Key,
    /// An SNS subscription, by `subscriptionArn`.
    Subscription,
    /// An SNS topic, by `topicArn`.
    Topic,
    /// An EventBridge Scheduler schedule, by `name`: the canary's, or the watchdog's.
    Schedule,
    /// One of the tripwire's functions, by `functionName` (a name or an ARN).
    Function,
    /// A service control policy, by `policyId`: the tripwire's if `tripwire_scps` lists it.
    Scp,
    /// One of the central stack's event buses, by `name` or `eventBusName`.
    Bus,
    /// The central stack's table, by `tableName` or `resourceArn`.
    Table,
    /// One of the central stack's alarms, by `alarmName` or `alarmNames`.
    Alarm,
    /// The published policy's parameter, by `name` or `names`.
    Parameter,
    /// The member StackSet, by `stackSetName` (a name, or a name and ID).
    StackSet,
}

impl TamperTarget {
    /// A part only the security account has: its calls are matched there alone.
    pub const fn security_only(self) -> bool {
        matches!(
            self,
            TamperTarget::Bus
                | TamperTarget::Table
                | TamperTarget::Alarm
                | TamperTarget::Parameter
                | TamperTarget::StackSet
        )
    }
}

/// A call read for context, never counted.
#[derive(Debug)]
pub struct ContextCall {
    /// CloudTrail `eventSource`.
    pub event_source: &'static str,
    /// CloudTrail `eventName`.
    pub event_name: &'static str,
    /// What it tells.
    pub role: Role,
}

const fn call(event_source: &'static str, event_name: &'static str, role: Role) -> ContextCall {
    ContextCall {
        event_source,
        event_name,
        role,
    }
}

const STS: &str = "sts.amazonaws.com";
const ASG: &str = "autoscaling.amazonaws.com";
const EC2: &str = "ec2.amazonaws.com";
const TRAIL: &str = "cloudtrail.amazonaws.com";
const EVENTS: &str = "events.amazonaws.com";
const IAM: &str = "iam.amazonaws.com";
const KMS: &str = "kms.amazonaws.com";
const SNS: &str = "sns.amazonaws.com";
const SCHEDULER: &str = "scheduler.amazonaws.com";
const LAMBDA: &str = "lambda.amazonaws.com";
const ORGANIZATIONS: &str = "organizations.amazonaws.com";
const EKS: &str = "eks.amazonaws.com";
const EMR: &str = "elasticmapreduce.amazonaws.com";
const DYNAMODB: &str = "dynamodb.amazonaws.com";
const MONITORING: &str = "monitoring.amazonaws.com";
const SSM: &str = "ssm.amazonaws.com";
const CLOUDFORMATION: &str = "cloudformation.amazonaws.com";

use Decides::{Always, Instance, WhenSet, WhenTrue};
use Role::{Assumption, Initiator, Tamper};
use TamperTarget as T;

/// Every context call, in the order the templates' patterns list them.
pub const CONTEXT: [ContextCall; 85] = [
    call(STS, "AssumeRole", Assumption),
    call(STS, "AssumeRoleWithWebIdentity", Assumption),
    call(STS, "AssumeRoleWithSAML", Assumption),
    // Auto Scaling logs its request parameters in lower camel case, as the public
    // `DeleteAutoScalingGroup` record in the fixtures shows (`forceDelete`).
    call(
        ASG,
        "DeleteAutoScalingGroup",
        Initiator(WhenTrue("forceDelete")),
    ),
    call(
        ASG,
        "UpdateAutoScalingGroup",
        Initiator(WhenSet(&["desiredCapacity", "maxSize"])),
    ),
    call(ASG, "SetDesiredCapacity", Initiator(Always)),
    call(
        ASG,
        "TerminateInstanceInAutoScalingGroup",
        Initiator(Instance("instanceId")),
    ),
    // EC2's fleet records are not read for their flags (no public record shows their
    // request shape): any successful call counts as deciding.
    call(EC2, "DeleteFleets", Initiator(Always)),
    call(EC2, "CancelSpotFleetRequests", Initiator(Always)),
    call(EC2, "ModifyFleet", Initiator(Always)),
    call(EC2, "ModifySpotFleetRequest", Initiator(Always)),
    call(EKS, "DeleteNodegroup", Initiator(Always)),
    call(
        EKS,
        "UpdateNodegroupConfig",
        Initiator(WhenSet(&["scalingConfig"])),
    ),
    call(CLOUDFORMATION, "DeleteStack", Initiator(Always)),
    call(EMR, "TerminateJobFlows", Initiator(Always)),
    call(EMR, "ModifyInstanceGroups", Initiator(Always)),
    call(
        "batch.amazonaws.com",
        "DeleteComputeEnvironment",
        Initiator(Always),
    ),
    call(TRAIL, "StopLogging", Tamper(T::Trail)),
    call(TRAIL, "DeleteTrail", Tamper(T::Trail)),
    call(TRAIL, "UpdateTrail", Tamper(T::Trail)),
    call(TRAIL, "PutEventSelectors", Tamper(T::TrailSelectors)),
    call(EVENTS, "DisableRule", Tamper(T::Rule)),
    call(EVENTS, "DeleteRule", Tamper(T::Rule)),
    call(EVENTS, "PutRule", Tamper(T::Rule)),
    call(EVENTS, "PutTargets", Tamper(T::RuleTargets)),
    call(EVENTS, "RemoveTargets", Tamper(T::RuleTargets)),
    // The organization bus: who may put events on it, and the bus itself.
    call(EVENTS, "PutPermission", Tamper(T::Bus)),
    call(EVENTS, "RemovePermission", Tamper(T::Bus)),
    call(EVENTS, "DeleteEventBus", Tamper(T::Bus)),
    call(IAM, "DeleteRolePolicy", Tamper(T::Iam)),
    call(IAM, "DeleteUserPolicy", Tamper(T::Iam)),
    call(IAM, "DetachRolePolicy", Tamper(T::Iam)),
    call(IAM, "DetachUserPolicy", Tamper(T::Iam)),
    call(IAM, "DeletePolicy", Tamper(T::Iam)),
    call(IAM, "CreatePolicyVersion", Tamper(T::Iam)),
    call(IAM, "SetDefaultPolicyVersion", Tamper(T::Iam)),
    call(IAM, "DeletePolicyVersion", Tamper(T::Iam)),
    call(IAM, "DeleteRole", Tamper(T::Iam)),
    call(IAM, "UpdateAssumeRolePolicy", Tamper(T::Iam)),
    call(IAM, "UpdateRole", Tamper(T::Iam)),
    call(IAM, "PutRolePolicy", Tamper(T::Iam)),
    call(IAM, "PutUserPolicy", Tamper(T::Iam)),
    call(IAM, "UpdateAccessKey", Tamper(T::Iam)),
    call(IAM, "AttachRolePolicy", Tamper(T::Iam)),
    call(IAM, "PutRolePermissionsBoundary", Tamper(T::Iam)),
    call(IAM, "DeleteRolePermissionsBoundary", Tamper(T::Iam)),
    call(IAM, "TagRole", Tamper(T::Iam)),
    // Removing the tags that name a contained culprit lifts its scope like a detach.
    call(IAM, "UntagRole", Tamper(T::Iam)),
    call(IAM, "UntagUser", Tamper(T::Iam)),
    call(KMS, "DisableKey", Tamper(T::Key)),
    call(KMS, "ScheduleKeyDeletion", Tamper(T::Key)),
    call(KMS, "PutKeyPolicy", Tamper(T::Key)),
    call(KMS, "DisableKeyRotation", Tamper(T::Key)),
    call(SNS, "Unsubscribe", Tamper(T::Subscription)),
    // A filter policy that matches nothing silences a subscription as surely.
    call(SNS, "SetSubscriptionAttributes", Tamper(T::Subscription)),
    call(SNS, "DeleteTopic", Tamper(T::Topic)),
    call(SNS, "SetTopicAttributes", Tamper(T::Topic)),
    call(SNS, "RemovePermission", Tamper(T::Topic)),
    // The security account's table (its resource policy guards the incidents), alarms,
    // published policy and member StackSet (an AllowedAccounts of every account).
    // (UpdateTable stays a precursor only: turning deletion protection off is counted.)
    call(DYNAMODB, "DeleteTable", Tamper(T::Table)),
    call(DYNAMODB, "UpdateTimeToLive", Tamper(T::Table)),
    call(DYNAMODB, "PutResourcePolicy", Tamper(T::Table)),
    call(DYNAMODB, "DeleteResourcePolicy", Tamper(T::Table)),
    call(MONITORING, "DeleteAlarms", Tamper(T::Alarm)),
    call(MONITORING, "DisableAlarmActions", Tamper(T::Alarm)),
    call(MONITORING, "PutMetricAlarm", Tamper(T::Alarm)),
    call(SSM, "PutParameter", Tamper(T::Parameter)),
    call(SSM, "DeleteParameter", Tamper(T::Parameter)),
    call(SSM, "DeleteParameters", Tamper(T::Parameter)),
    call(SSM, "LabelParameterVersion", Tamper(T::Parameter)),
    call(CLOUDFORMATION, "UpdateStackSet", Tamper(T::StackSet)),
    call(CLOUDFORMATION, "DeleteStackSet", Tamper(T::StackSet)),
    call(CLOUDFORMATION, "DeleteStackInstances", Tamper(T::StackSet)),
    call(CLOUDFORMATION, "UpdateStackInstances", Tamper(T::StackSet)),
    // Deleting or disabling the canary's schedule silences its heartbeats; the
    // watchdog's, its pages. A disabled schedule stays, so UpdateSchedule too.
    call(SCHEDULER, "DeleteSchedule", Tamper(T::Schedule)),
    call(SCHEDULER, "UpdateSchedule", Tamper(T::Schedule)),
    // Lambda's event names carry the API version (the Lambda developer guide lists
    // them; the corpus has UpdateFunctionCode20150331v2 and
    // UpdateFunctionConfiguration20150331v2). Reserved concurrency 0 silences the
    // detector with every part intact.
    call(
        LAMBDA,
        "PutFunctionConcurrency20171031",
        Tamper(T::Function),
    ),
    call(
        LAMBDA,
        "UpdateFunctionConfiguration20150331v2",
        Tamper(T::Function),
    ),
    call(LAMBDA, "UpdateFunctionCode20150331v2", Tamper(T::Function)),
    // Who may invoke them (a direct invoke could hand the detector a forged event), in
    // both API versions' names CloudTrail logs.
    call(LAMBDA, "AddPermission20150331v2", Tamper(T::Function)),
    call(LAMBDA, "AddPermission20150331", Tamper(T::Function)),
    call(LAMBDA, "RemovePermission20150331v2", Tamper(T::Function)),
    call(LAMBDA, "RemovePermission20150331", Tamper(T::Function)),
    // In the management account, where no SCP binds anyone: the records name the policy
    // by ID only (`policyId`, as Organizations' records name an account `accountId`).
    call(ORGANIZATIONS, "DetachPolicy", Tamper(T::Scp)),
    call(ORGANIZATIONS, "DeletePolicy", Tamper(T::Scp)),
    call(ORGANIZATIONS, "UpdatePolicy", Tamper(T::Scp)),
];

/// The context call a record's `eventSource` and `eventName` name, if any.
pub fn context(event_source: &str, event_name: &str) -> Option<&'static ContextCall> {
    if !may_name(event_name) {
        return None;
    }
    CONTEXT
        .iter()
        .find(|c| c.event_source == event_source && c.event_name == event_name)
}

/// The context calls of one kind (`Tamper` of any target counts as one kind).
pub fn context_calls(kind: fn(Role) -> bool) -> impl Iterator<Item = &'static ContextCall> {
    CONTEXT.iter().filter(move |c| kind(c.role))
}

/// The IAM actions of the initiator calls: a braked principal may not make a service
/// terminate for it.
pub fn initiator_actions() -> Vec<String> {
    context_calls(|r| matches!(r, Initiator(_)))
        .map(|c| {
            let service = c
                .event_source
                .strip_suffix(".amazonaws.com")
                .unwrap_or(c.event_source);
            format!("{service}:{}", c.event_name)
        })
        .collect()
}

/// `values` in first-seen order, each once.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn calls_pattern(calls: &[&ContextCall]) -> Value {
    json!({
        // Only AWS's own events: PutEvents refuses a custom event whose source begins
        // with `aws.`, so no one's flood of look-alikes reaches the detector.
        "source": [{ "prefix": "aws." }],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(calls.iter().map(|c| c.event_source)),
            // Once each: IAM and Organizations both have a DeletePolicy.
            "eventName": distinct(calls.iter().map(|c| c.event_name)),
        },
    })
}

/// The EventBridge patterns both stacks forward and match on, by rule family:
/// `terminations` and `state_changes` (the member rules add their own filter on top), `session_issues`,
/// `initiators`, `tamper` and `security_tamper` (the security account's own rule).
pub fn event_patterns() -> Value {
    // Precursors ride with the destructive calls: the same members' filter, and each
    // service's source is already there.
    let terminations = json!({
        "source": distinct(every().map(|w| w.source)),
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(every().map(|w| w.event_source)),
            "eventName": every().map(|w| w.event_name).collect::<Vec<_>>(),
        },
    });
    let assumptions: Vec<&ContextCall> = context_calls(|r| r == Assumption).collect();
    let issues = json!({
        "source": ["aws.sts"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": distinct(assumptions.iter().map(|c| c.event_source)),
            "eventName": assumptions.iter().map(|c| c.event_name).collect::<Vec<_>>(),
            // Only sessions issued from outside the account: a chain from within it
            // shows up as the account's own role anyway.
            "userIdentity": { "type": ["AWSAccount", "WebIdentityUser", "SAMLUser"] },
            "errorCode": [{ "exists": false }],
        },
    });
    let mut initiators =
        calls_pattern(&context_calls(|r| matches!(r, Initiator(_))).collect::<Vec<_>>());
    // A failed initiator call decided nothing.
    initiators["detail"]["errorCode"] = json!([{ "exists": false }]);
    // A failed tamper call is an attempt, worth a page: no errorCode filter. The parts
    // only the security account has are matched there alone, by a rule of their own
    // (each pattern stays within EventBridge's 2,048 characters).
    let tamper = calls_pattern(
        &context_calls(|r| matches!(r, Tamper(t) if !t.security_only())).collect::<Vec<_>>(),
    );
    let security_tamper = calls_pattern(
        &context_calls(|r| matches!(r, Tamper(t) if t.security_only())).collect::<Vec<_>>(),
    );
    // EC2's own events for instances going away, whatever ended them: the shutdown-wave
    // lane (the member rule adds the allowed accounts' filter, as for terminations).
    let state_changes = json!({
        "source": ["aws.ec2"],
        "detail-type": [crate::record::STATE_CHANGE_DETAIL_TYPE],
        "detail": { "state": ["shutting-down", "terminated"] },
    });
    json!({
        "terminations": terminations,
        "state_changes": state_changes,
        "session_issues": issues,
        "initiators": initiators,
        "tamper": tamper,
        "security_tamper": security_tamper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for c in &CONTEXT {
            assert!(
                seen.insert((c.event_source, c.event_name)),
                "{}",
                c.event_name
            );
        }
        for w in WATCHED {
            assert!(
                seen.insert((w.event_source, w.event_name))
                    // A destructive call may also disarm the tripwire: both, then.
                    || matches!(context(w.event_source, w.event_name).map(|c| c.role), Some(Role::Tamper(_))),
                "{}",
                w.event_name
            );
            assert!(w
                .event_source
                .starts_with(w.source.trim_start_matches("aws.")));
        }
        // Every deny action once; every type named `service:type`, its service the
        // deny action's.
        let denies = distinct(WATCHED.iter().map(|w| w.deny_action));
        assert_eq!(denies.len(), WATCHED.len());
        for w in WATCHED {
            let (svc, _) = w.resource.kind.split_once(':').expect("service:type");
            assert!(
                w.deny_action.starts_with(&format!("{svc}:")),
                "{}",
                w.event_name
            );
            assert_eq!(of_kind(w.resource.kind).resource.kind, w.resource.kind);
        }
    }

    #[test]
    fn the_name_filter_admits_every_catalogued_call_and_turns_most_others_away() {
        for name in WATCHED
            .iter()
            .map(|w| w.event_name)
            .chain(CONTEXT.iter().map(|c| c.event_name))
        {
            assert!(may_name(name), "{name}");
        }
        // Calls a trail is full of.
        let others = [
            "DescribeInstances",
            "GetObject",
            "PutObject",
            "AssumeRoleWithClientGrants",
            "ListBuckets",
            "DescribeVolumes",
            "GetCallerIdentity",
            "Decrypt",
            "GenerateDataKey",
            "DescribeDBInstances",
            "CreateTags",
            "RunInstances",
            "StopInstances",
            "ConsoleLogin",
            "CreateLogStream",
            "PutLogEvents",
            "GetSecretValue",
            "DescribeTable",
            "Query",
            "UpdateItem",
        ];
        let admitted = others.iter().filter(|n| may_name(n)).count();
        assert!(
            admitted <= others.len() / 3,
            "{admitted} of {} admitted",
            others.len()
        );
    }

    #[test]
    fn precursors_are_found_counted_apart_and_denied_by_the_brake() {
        for w in &PRECURSORS {
            let found = watched(w.event_source, w.event_name).expect(w.event_name);
            assert_eq!(found, w, "{}", w.event_name);
            assert_eq!(w.resource.kind, PRECURSOR);
            assert!(w.precursor.is_some());
            assert!(may_name(w.event_name));
            assert!(!also_context(w));
            assert!(context(w.event_source, w.event_name).is_none());
        }
        assert!(WATCHED.iter().all(|w| w.precursor.is_none()));
        assert_eq!(kinds().last(), Some(&PRECURSOR));
        assert_eq!(of_kind(PRECURSOR).event_name, "ModifyInstanceAttribute");
        let denies = distinct(every().map(|w| w.deny_action));
        assert_eq!(denies.len(), WATCHED.len() + PRECURSORS.len());
        assert!(denies.contains(&"s3:PutLifecycleConfiguration"));
    }

    #[test]
    fn only_the_tripwires_own_table_and_keys_are_both_watched_and_a_context_call() {
        let both: Vec<&str> = WATCHED
            .iter()
            .filter(|w| also_context(w))
            .map(|w| w.event_name)
            .collect();
        assert_eq!(both, ["DeleteTable", "ScheduleKeyDeletion"]);
    }

    #[test]
    fn lookups_find_the_entries_and_nothing_else() {
        assert_eq!(
            watched("ec2.amazonaws.com", "TerminateInstances").map(|w| w.deny_action),
            Some("ec2:TerminateInstances")
        );
        assert!(watched("ec2.amazonaws.com", "StopInstances").is_none());
        assert!(watched("autoscaling.amazonaws.com", "TerminateInstances").is_none());
        assert_eq!(
            context("kms.amazonaws.com", "ScheduleKeyDeletion").map(|c| c.role),
            Some(Role::Tamper(TamperTarget::Key))
        );
        assert!(context("kms.amazonaws.com", "Decrypt").is_none());
    }

    #[test]
    fn the_patterns_name_each_call_of_their_family() {
        let p = event_patterns();
        let names = p["terminations"]["detail"]["eventName"].as_array().unwrap();
        assert_eq!(names.len(), WATCHED.len() + PRECURSORS.len());
        assert!(names.contains(&json!("PutBucketLifecycle")));
        assert_eq!(names[0], json!("TerminateInstances"));
        assert!(names.contains(&json!("DeleteDBInstance")));
        assert_eq!(p["terminations"]["source"][0], json!("aws.ec2"));
        assert!(p["terminations"]["source"]
            .as_array()
            .unwrap()
            .contains(&json!("aws.organizations")));
        assert_eq!(
            p["initiators"]["detail"]["eventName"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(
            p["tamper"]["detail"]["eventName"].as_array().unwrap().len(),
            // 50 calls; DeletePolicy is IAM's and Organizations'.
            49
        );
        assert!(p["tamper"]["detail"].get("errorCode").is_none());
        // The security account's own parts: a rule of their own, matched there alone.
        let security = p["security_tamper"]["detail"]["eventName"]
            .as_array()
            .unwrap();
        assert_eq!(security.len(), 18);
        assert!(security.contains(&json!("UpdateStackSet")));
        assert!(!p["tamper"]["detail"]["eventName"]
            .as_array()
            .unwrap()
            .contains(&json!("UpdateStackSet")));
        // Each stays within EventBridge's 2,048 characters per pattern.
        for family in [
            "terminations",
            "session_issues",
            "initiators",
            "tamper",
            "security_tamper",
        ] {
            let len = p[family].to_string().len();
            assert!(len <= 2048, "{family}: {len} characters");
        }
        assert_eq!(
            p["initiators"]["detail"]["eventSource"][0],
            json!("autoscaling.amazonaws.com")
        );
    }

    #[test]
    fn initiator_actions_are_iam_actions() {
        let a = initiator_actions();
        assert_eq!(a[0], "autoscaling:DeleteAutoScalingGroup");
        assert!(a.contains(&"elasticmapreduce:TerminateJobFlows".to_string()));
        assert_eq!(a.len(), 14);
    }
}
