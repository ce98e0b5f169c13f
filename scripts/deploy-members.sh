#!/usr/bin/env bash
# Prints (or, with RUN=1, runs) the commands that roll the member stack out to every
# account and region of the organization, plus the management account, which StackSets
# never deploy to. Run it where the central stack was deployed, as the StackSets
# delegated administrator.
#   REGIONS         space-separated regions to cover (default: us-east-1)
#   PRIMARY_REGION  the region whose instance creates the IAM roles (default: first of REGIONS)
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
REGIONS=${REGIONS:-us-east-1}
PRIMARY_REGION=${PRIMARY_REGION:-${REGIONS%% *}}
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
for region in ${ORDER//,/ }; do
  commands+=("# in the MANAGEMENT account (StackSets never deploy there), region $region:")
  commands+=("aws cloudformation deploy --region $region --stack-name tripwire-member --template-file infra/member.yaml --capabilities CAPABILITY_NAMED_IAM --parameter-overrides OrgId=$ORG_ID CentralEventBusArn=$BUS ResponderRoleArn=$ROLE PrimaryRegion=$PRIMARY_REGION 'ProtectedPrincipals=$PROTECTED' 'DenyActions=$DENY' DeactivateKeys=$DEACTIVATE 'AllowedAccounts=$ALLOWED' ServiceLane=$SERVICE_LANE 'ReleasePrincipals=$RELEASE_PRINCIPALS' ContainInThisAccount=$CONTAIN_MANAGEMENT")
done
for c in "${commands[@]}"; do
  echo "$c"
  if [ "${RUN:-0}" = 1 ] && [[ $c != \#* ]] && [[ $c != *"deploy --region"* ]]; then eval "$c"; fi
done
