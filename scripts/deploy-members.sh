#!/usr/bin/env bash
# Prints (or, with RUN=1, runs) the commands that roll the member stack out to every
# account and region of the organization, plus the management account, which StackSets
# never deploy to. Run it where the central stack was deployed, as the StackSets
# delegated administrator.
#   REGIONS         space-separated regions to cover (default: every region enabled in
#                   this account, from `aws ec2 describe-regions`; the script refuses to
#                   run when that cannot be read and REGIONS is unset)
#   PRIMARY_REGION  the region whose instance creates the IAM roles (default: us-east-1
#                   when covered, else the first of REGIONS)
#   MANAGEMENT_PROFILE  the AWS CLI profile of the management account: with RUN=1 the
#                   management account's stacks are deployed with it (StackSets never
#                   reach that account). RUN=1 refuses without it unless SKIP_MANAGEMENT=1
#   PRINT_REGIONS   1 prints the regions, comma-separated, and exits (make deploy passes
#                   them to the central stack as ExpectedRegions)
#   ROOT_OU         organization root or OU IDs to target (default: looked up)
#   CENTRAL_STACK   the central stack's name (default: tripwire)
#   POLICY          the policy file whose protected_principals, deny_actions,
#                   deactivate_keys, allowed_accounts and service lane the stacks get
#                   (default: config/policy.toml): one source, given once
#   RELEASE_PRINCIPALS  comma-separated role/user ARNs that may assume the release role
#                   (`tripwire release`); empty creates no release role
#   CONTAIN_MANAGEMENT  1 to create the containment roles in the management account
#                   too (default: it only forwards events)
set -euo pipefail
# Every region enabled here unless REGIONS names them: a region never deployed is never
# watched, and the watchdog expects every enabled region of every account.
if [ -z "${REGIONS:-}" ]; then
  REGIONS=$(aws ec2 describe-regions --query 'Regions[].RegionName' --output text 2>/dev/null | tr -s '\t ' '\n\n' | sort | paste -sd' ' -) || REGIONS=
  if [ -z "$REGIONS" ]; then
    echo "deploy-members: cannot read the enabled regions (aws ec2 describe-regions); set REGIONS" >&2
    exit 1
  fi
fi
if [ "${PRINT_REGIONS:-0}" = 1 ]; then
  echo "$REGIONS" | tr ' ' ','
  exit 0
fi
case " $REGIONS " in
  *" us-east-1 "*) PRIMARY_REGION=${PRIMARY_REGION:-us-east-1} ;;
  *) PRIMARY_REGION=${PRIMARY_REGION:-${REGIONS%% *}} ;;
esac
if [ "${RUN:-0}" = 1 ] && [ -z "${MANAGEMENT_PROFILE:-}" ] && [ "${SKIP_MANAGEMENT:-0}" != 1 ]; then
  echo "deploy-members: set MANAGEMENT_PROFILE (the management account's CLI profile) to deploy its forwarder too, or SKIP_MANAGEMENT=1 to leave it undeployed (its calls then go unwatched)" >&2
  exit 1
fi
CENTRAL_STACK=${CENTRAL_STACK:-tripwire}
output() { aws cloudformation describe-stacks --stack-name "$CENTRAL_STACK" --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text; }
if [ "${RUN:-0}" = 1 ]; then
  ORG_ID=${ORG_ID:-$(aws organizations describe-organization --query Organization.Id --output text)}
  ROOT_OU=${ROOT_OU:-$(aws organizations list-roots --query 'Roots[0].Id' --output text)}
  BUS=$(output EventBusArn)
  ROLE=$(output ResponderRoleArn)
else
  ORG_ID=${ORG_ID:-'<o-xxxxxxxxxx>'}
  ROOT_OU=${ROOT_OU:-'<r-xxxx or ou-xxxx-xxxxxxxx>'}
  BUS='<EventBusArn output of the central stack>'
  ROLE='<ResponderRoleArn output of the central stack>'
fi
# The primary region goes first: it creates the roles the other regions' rules use.
ORDER=$(echo "$PRIMARY_REGION $REGIONS" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | paste -sd, -)
POLICY=${POLICY:-config/policy.toml}
TRIPWIRE=${TRIPWIRE:-tripwire}
command -v "$TRIPWIRE" >/dev/null || TRIPWIRE=./target/release/tripwire
[ -x "$TRIPWIRE" ] || command -v "$TRIPWIRE" >/dev/null || { echo "build the CLI first: cargo build --release -p tripwire-cli" >&2; exit 1; }
PROTECTED=$("$TRIPWIRE" check-policy "$POLICY" --get protected_principals)
DENY=$("$TRIPWIRE" check-policy "$POLICY" --get deny_actions)
DEACTIVATE=$("$TRIPWIRE" check-policy "$POLICY" --get deactivate_keys)
# What the policy can never count stays in the member accounts (infra/member.yaml).
ALLOWED=$("$TRIPWIRE" check-policy "$POLICY" --get allowed_accounts)
SERVICE_LANE=$("$TRIPWIRE" check-policy "$POLICY" --get service_lane)
RELEASE_PRINCIPALS=${RELEASE_PRINCIPALS:-}
CONTAIN_MANAGEMENT=$([ "${CONTAIN_MANAGEMENT:-0}" = 1 ] && echo true || echo false)
# CloudFormation's shorthand splits on commas: a list value escapes its own.
esc() { printf '%s' "$1" | sed 's/,/\\,/g'; }
PARAMS="ParameterKey=OrgId,ParameterValue=$ORG_ID ParameterKey=CentralEventBusArn,ParameterValue=$BUS ParameterKey=ResponderRoleArn,ParameterValue=$ROLE ParameterKey=PrimaryRegion,ParameterValue=$PRIMARY_REGION ParameterKey=ProtectedPrincipals,ParameterValue='$(esc "$PROTECTED")' ParameterKey=DenyActions,ParameterValue='$(esc "$DENY")' ParameterKey=DeactivateKeys,ParameterValue=$DEACTIVATE ParameterKey=AllowedAccounts,ParameterValue='$(esc "$ALLOWED")' ParameterKey=ServiceLane,ParameterValue=$SERVICE_LANE ParameterKey=ReleasePrincipals,ParameterValue='$(esc "$RELEASE_PRINCIPALS")'"
commands=(
  "aws cloudformation create-stack-set --call-as DELEGATED_ADMIN --stack-set-name tripwire-member --template-body file://infra/member.yaml --capabilities CAPABILITY_NAMED_IAM --permission-model SERVICE_MANAGED --auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false --parameters $PARAMS"
  "aws cloudformation create-stack-instances --call-as DELEGATED_ADMIN --stack-set-name tripwire-member --deployment-targets OrganizationalUnitIds=$ROOT_OU --regions ${ORDER//,/ } --operation-preferences RegionConcurrencyType=SEQUENTIAL,RegionOrder=$ORDER,FailureTolerancePercentage=10,MaxConcurrentPercentage=25"
)
MANAGEMENT=${MANAGEMENT_PROFILE:+ --profile $MANAGEMENT_PROFILE}
for region in ${ORDER//,/ }; do
  commands+=("# in the MANAGEMENT account (StackSets never deploy there), region $region:")
  commands+=("aws$MANAGEMENT cloudformation deploy --region $region --stack-name tripwire-member --template-file infra/member.yaml --capabilities CAPABILITY_NAMED_IAM --parameter-overrides OrgId=$ORG_ID CentralEventBusArn=$BUS ResponderRoleArn=$ROLE PrimaryRegion=$PRIMARY_REGION 'ProtectedPrincipals=$PROTECTED' 'DenyActions=$DENY' DeactivateKeys=$DEACTIVATE 'AllowedAccounts=$ALLOWED' ServiceLane=$SERVICE_LANE 'ReleasePrincipals=$RELEASE_PRINCIPALS' ContainInThisAccount=$CONTAIN_MANAGEMENT")
done
for c in "${commands[@]}"; do
  echo "$c"
  if [ "${RUN:-0}" = 1 ] && [[ $c != \#* ]]; then
    # The management account's stacks need its own credentials.
    if [[ $c == *"deploy --region"* ]] && [ -z "${MANAGEMENT_PROFILE:-}" ]; then continue; fi
    eval "$c"
  fi
done
